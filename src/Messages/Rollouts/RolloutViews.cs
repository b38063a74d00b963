namespace Orchestrator.Messages.Rollouts;

/// <summary>Where a rollout stands. Names are persisted in snapshots and shown to operators.</summary>
public enum RolloutStatus
{
    /// <summary>Created; waiting for its start time.</summary>
    Created,
    /// <summary>Assigning devices wave by wave.</summary>
    Running,
    /// <summary>Paused by an operator or by the error threshold; see the reason.</summary>
    Paused,
    /// <summary>Every device finished and the last wave met its success threshold.</summary>
    Completed,
    /// <summary>Ended by an operator; unfinished assignments were cancelled.</summary>
    Aborted,
    /// <summary>Touched devices were assigned their previous version.</summary>
    RolledBack,
}

/// <summary>Where one device stands within a rollout.</summary>
public enum RolloutDeviceOutcome
{
    /// <summary>Not assigned yet.</summary>
    Pending,
    /// <summary>Assigned; not finished.</summary>
    InProgress,
    /// <summary>Installed the target version.</summary>
    Succeeded,
    /// <summary>Gave up on it (retry policy exhausted, assignment refused or removed); see the reason.</summary>
    Failed,
}

/// <summary>Where one device stands in a rollback.</summary>
public enum RollbackOutcome
{
    /// <summary>Assigned its previous version (with a downgrade authorization); not back yet.</summary>
    InProgress,
    /// <summary>Back on its previous version.</summary>
    Restored,
    /// <summary>Did not get back (retry policy exhausted or assignment replaced); see the reason.</summary>
    Failed,
}

/// <summary>Progress of a rollback, read from the devices' own state (so the rollout and device views agree).</summary>
/// <param name="Total">Devices the rollback restores to a previous version.</param>
/// <param name="InProgress">Not back yet.</param>
/// <param name="Restored">Back on their previous version.</param>
/// <param name="Failed">Did not get back.</param>
public sealed record RollbackCounters(int Total, int InProgress, int Restored, int Failed);

/// <summary>Exact counters of one wave.</summary>
/// <param name="Wave">Wave number (1-based).</param>
/// <param name="Total">Devices in the wave.</param>
/// <param name="Pending">Not assigned yet.</param>
/// <param name="InProgress">Assigned, not finished.</param>
/// <param name="Succeeded">Installed the target.</param>
/// <param name="Failed">Failed.</param>
/// <param name="Failing">Of <paramref name="InProgress"/>: devices past the failing threshold, still retrying.</param>
public sealed record WaveCounters(int Wave, int Total, int Pending, int InProgress, int Succeeded, int Failed, int Failing = 0);

/// <summary>A failed device and why.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Wave">Wave number (1-based).</param>
/// <param name="Reason">Why it counts as failed (or failing).</param>
/// <param name="Failing">True for a device that is failing but still retrying (not given up).</param>
public sealed record RolloutDeviceFailure(string DeviceId, int Wave, string Reason, bool Failing = false);

/// <summary>A rollout with its counters: the answer to <see cref="GetRollout"/> and to every accepted command.</summary>
/// <param name="Spec">What was asked for.</param>
/// <param name="Status">State.</param>
/// <param name="CurrentWave">The wave being rolled out (1-based).</param>
/// <param name="PauseReason">Why it is paused (or was aborted / rolled back), if so.</param>
/// <param name="Waves">Per-wave counters.</param>
/// <param name="Failures">Failed devices (at most 100).</param>
/// <param name="CommandsPending">True while abort/rollback commands are still being delivered to devices.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="UpdatedAt">Time of its last event.</param>
/// <param name="Rollback">After a rollback: how many devices are back on their previous version; null before.</param>
public sealed record RolloutView(
    RolloutSpec Spec, RolloutStatus Status, int CurrentWave, string? PauseReason, IReadOnlyList<WaveCounters> Waves,
    IReadOnlyList<RolloutDeviceFailure> Failures, bool CommandsPending, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    RollbackCounters? Rollback = null) : IOrchestratorMessage;

/// <summary>One line of <see cref="RolloutList"/>.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Product">Product.</param>
/// <param name="Version">Target version.</param>
/// <param name="Status">State.</param>
/// <param name="CurrentWave">Current wave (1-based).</param>
/// <param name="WaveCount">Number of waves.</param>
/// <param name="Total">Devices covered.</param>
/// <param name="Succeeded">Devices that installed the target.</param>
/// <param name="Failed">Devices that failed.</param>
/// <param name="UpdatedAt">When the rollout last changed (null from nodes that did not report it).</param>
public sealed record RolloutSummary(string RolloutId, string Product, string Version, RolloutStatus Status, int CurrentWave, int WaveCount,
    int Total, int Succeeded, int Failed, DateTimeOffset? UpdatedAt = null);

/// <summary>Answer to <see cref="ListRollouts"/>, ordered by id.</summary>
/// <param name="Rollouts">The rollouts.</param>
public sealed record RolloutList(IReadOnlyList<RolloutSummary> Rollouts) : IOrchestratorMessage;

/// <summary>A rollout command was refused; nothing changed.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Code">Stable code: <c>invalid_request</c>, <c>not_found</c>, <c>already_exists</c>, <c>conflicting_rollout</c>, <c>invalid_state</c>, <c>no_failed_devices</c>.</param>
/// <param name="Field">The request field at fault (empty when not about one field).</param>
/// <param name="Message">What was wrong and how to fix it.</param>
public sealed record RolloutRejected(string RolloutId, string Code, string Field, string Message) : IOrchestratorMessage;

/// <summary>
/// Answer of <c>POST /admin/v1/rollouts/preview</c>: what creating a rollout with the same body would select right now,
/// by the coordinator's own rule; nothing is created or claimed.
/// </summary>
/// <param name="Product">Target product.</param>
/// <param name="Version">Target version.</param>
/// <param name="VersionId">Target version ID.</param>
/// <param name="Channel">Channel the rollout would move.</param>
/// <param name="Devices">Devices selected.</param>
/// <param name="WaveSizes">Devices per wave, in order.</param>
/// <param name="Installed">What the selected devices run now (version ID null: not checked in yet).</param>
/// <param name="AlreadyOnTarget">Selected devices already running the target.</param>
/// <param name="Sample">The first selected device ids (at most 20, ordered).</param>
public sealed record RolloutPreview(string Product, string Version, long VersionId, string Channel, int Devices, IReadOnlyList<int> WaveSizes,
    IReadOnlyList<InstalledVersionCount> Installed, int AlreadyOnTarget, IReadOnlyList<string> Sample);

/// <summary>Selected devices running one version.</summary>
/// <param name="VersionId">Installed version ID; null for devices that have not checked in yet.</param>
/// <param name="Devices">How many.</param>
public sealed record InstalledVersionCount(long? VersionId, int Devices);
