using System.Diagnostics.Metrics;

namespace Orchestrator.DeviceActors;

/// <summary>Instruments of the device actors and their node's silence watch (meter <see cref="MeterName"/>).</summary>
public static class DeviceActorMetrics
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Orchestrator.DeviceActors";

    private static readonly Meter Meter = new(MeterName);
    private static long _live;

    /// <summary>Device actors started and not yet stopped in this process: what a node's memory grows with.</summary>
    public static long LiveActors => Interlocked.Read(ref _live);

    private static readonly ObservableGauge<long> LiveActorsGauge = Meter.CreateObservableGauge("orch_device_actors_live",
        () => LiveActors, description: "Device actors live on this node (a passivated or Offline device holds none)");

    internal static void ActorStarted() => Interlocked.Increment(ref _live);

    internal static void ActorStopped() => Interlocked.Decrement(ref _live);

    /// <summary>
    /// Offline checks of passivated devices the silence watch put off because the device was sighted since (a check-in
    /// answered without its actor, on this node or carried from another), without waking the actor.
    /// </summary>
    public static readonly Counter<long> OfflineChecksDeferred = Meter.CreateCounter<long>("orch_device_offline_checks_deferred",
        description: "Offline checks of passivated devices deferred by a sighting, without waking the actor");
}
