using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// Carries the idle fast path's sightings between nodes: once a second it publishes what this node's gateway answered
/// without actors (<see cref="DeviceRowTable.TakePendingSightings"/>) on <see cref="SightingTopics.Sightings"/> in
/// <see cref="DevicesSighted"/> batches, and records every other node's batches in this node's table, where the silence
/// watch and the device actors hosted here read them. A device's check-ins may land on any gateway while its actor
/// lives on one node; with the carry, that node counts the device as heard within about a second. Pub-sub is best
/// effort: a lost batch can only let a device the fast path answered elsewhere go Offline, and its next check-in
/// brings it back.
/// </summary>
public sealed class SightingsCarry : ReceiveActor, IWithTimers
{
    /// <summary>How often the sightings gathered on this node are published.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly DeviceRowTable _table;
    private readonly TimeSpan _offlineAfter;
    private readonly IActorRef _mediator;
    private DateTimeOffset _lastForget = DateTimeOffset.UtcNow;

    /// <summary>Props of the carry.</summary>
    /// <param name="table">This node's rows and sightings.</param>
    /// <param name="offlineAfter">The devices' offline timeout: older sightings of devices without a row here are forgotten.</param>
    public static Props Props(DeviceRowTable table, TimeSpan offlineAfter) => Akka.Actor.Props.Create(() => new SightingsCarry(table, offlineAfter));

    /// <summary>Use <see cref="Props"/>.</summary>
    public SightingsCarry(DeviceRowTable table, TimeSpan offlineAfter)
    {
        _table = table;
        _offlineAfter = offlineAfter;
        _mediator = DistributedPubSub.Get(Context.System).Mediator;
        table.CarrySightings();
        Receive<SubscribeAck>(_ => { });
        Receive<DevicesSighted>(batch =>
        {
            // This node's own batches come back through the topic; its table already has them.
            if (Sender.Equals(Self)) return;
            for (var i = 0; i < batch.DeviceIds.Count; i++) _table.Sighted(batch.DeviceIds[i], batch.SightedUtcTicks[i]);
            GatewayMetrics.SightingsReceived.Add(batch.DeviceIds.Count);
        });
        Receive<Tick>(_ => Publish());
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <inheritdoc />
    protected override void PreStart()
    {
        _mediator.Tell(new Subscribe(SightingTopics.Sightings, Self));
        Timers.StartPeriodicTimer("publish", Tick.Instance, Interval);
    }

    private void Publish()
    {
        var pending = _table.TakePendingSightings();
        for (var start = 0; start < pending.Count; start += DevicesSighted.MaxBatch)
        {
            var count = Math.Min(DevicesSighted.MaxBatch, pending.Count - start);
            var ids = new string[count];
            var ticks = new long[count];
            for (var i = 0; i < count; i++) (ids[i], ticks[i]) = pending[start + i];
            _mediator.Tell(new Publish(SightingTopics.Sightings, new DevicesSighted(ids, ticks)), Self);
        }
        // Sightings of devices without a row here only serve offline decisions, which never look further back.
        var now = DateTimeOffset.UtcNow;
        if (now - _lastForget < _offlineAfter / 4) return;
        _lastForget = now;
        _table.ForgetSightingsBefore(now - _offlineAfter);
    }

    private sealed class Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }
}
