namespace Orchestrator.DeviceActors;

/// <summary>
/// How many device actors are live in this process: what a node's memory grows with. Counted as actors start and
/// stop (a passivated or Offline device holds none); read by the node's <c>orch_device_actors_live</c> gauge.
/// </summary>
public static class DeviceActorCount
{
    private static long _live;

    /// <summary>Device actors started and not yet stopped in this process.</summary>
    public static long Live => Interlocked.Read(ref _live);

    internal static void Started() => Interlocked.Increment(ref _live);

    internal static void Stopped() => Interlocked.Decrement(ref _live);
}
