using Orchestrator.DeviceActors.Registry;

namespace Orchestrator.Node.Rollouts;

/// <summary>Tunables of the rollout actors.</summary>
/// <param name="PollInterval">How often a rollout re-reads its in-flight devices and decides (also the start-time and window granularity).</param>
/// <param name="AskTimeout">Timeout of one ask to a device actor or the registry.</param>
/// <param name="JoinCheckInterval">How often a rollout looks for devices that newly match its selector.</param>
/// <param name="SnapshotEvery">Save a snapshot after this many events.</param>
/// <param name="Clock">Clock for start times, windows, soak times and event timestamps.</param>
/// <param name="MaxAssignPerPass">
/// At most this many new assignments per pass: each is a persisted event on the device, so a rollout with a huge
/// maxConcurrent ramps up over several passes instead of loading and writing tens of thousands of devices at once.
/// </param>
/// <param name="MaxObservePerPass">At most this many in-flight devices are re-read per pass (in rotation), bounding a pass's cost.</param>
/// <param name="RegistryQueryLimit">
/// Most devices rollout creation and the late-joiner check read from the registry (<c>Devices:RegistryQueryLimit</c>);
/// more is refused (creation) or logged as an error (joiners), never a truncated selection.
/// </param>
public sealed record RolloutSettings(TimeSpan PollInterval, TimeSpan AskTimeout, TimeSpan JoinCheckInterval, int SnapshotEvery, TimeProvider Clock,
    int MaxAssignPerPass = 500, int MaxObservePerPass = 2000, int RegistryQueryLimit = RegistrySelection.DefaultLimit)
{
    /// <summary>Poll every 2 s, asks 5 s, joiners every 30 s, snapshot every 200 events (at least one per device), system clock.</summary>
    public static RolloutSettings Default { get; } = new(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), 200, TimeProvider.System);
}
