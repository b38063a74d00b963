namespace Orchestrator.Messages.Rollouts;

// Persisted events of the rollout actor and the rollout coordinator. Past tense; OrchestratorSerializer states how a
// shape may change (appended members with a meaning-preserving default, otherwise a new ".vN" record).

/// <summary>Marker for every persisted rollout event.</summary>
public interface IRolloutEvent : IOrchestratorMessage
{
    /// <summary>When it happened.</summary>
    DateTimeOffset At { get; }
}

/// <summary>The devices of one wave, in assignment order.</summary>
/// <param name="DeviceIds">Device ids.</param>
public sealed record PlannedWave(IReadOnlyList<string> DeviceIds);

/// <summary>The rollout was created with its plan (device order and wave cut fixed here, so recovery is deterministic).</summary>
/// <param name="Spec">The spec.</param>
/// <param name="Plan">Devices per wave.</param>
/// <param name="At">When.</param>
public sealed record RolloutCreated(RolloutSpec Spec, IReadOnlyList<PlannedWave> Plan, DateTimeOffset At) : IRolloutEvent;

/// <summary>The start time passed; wave 1 began.</summary>
/// <param name="At">When.</param>
public sealed record RolloutStarted(DateTimeOffset At) : IRolloutEvent;

/// <summary>Devices that match the selector appeared after creation and joined the last wave.</summary>
/// <param name="DeviceIds">The devices.</param>
/// <param name="At">When.</param>
public sealed record RolloutDevicesJoined(IReadOnlyList<string> DeviceIds, DateTimeOffset At) : IRolloutEvent;

/// <summary>The device accepted the rollout's target.</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="PreviousVersionId">Version installed before (0 = none or unknown); rollback restores it.</param>
/// <param name="At">When.</param>
public sealed record RolloutDeviceAssigned(string DeviceId, long PreviousVersionId, DateTimeOffset At) : IRolloutEvent;

/// <summary>The device's own state shows the target installed.</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="At">When.</param>
public sealed record RolloutDeviceSucceeded(string DeviceId, DateTimeOffset At) : IRolloutEvent;

/// <summary>The rollout gave up on the device.</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record RolloutDeviceFailed(string DeviceId, string Reason, DateTimeOffset At) : IRolloutEvent;

/// <summary>
/// A device still working on its assignment reached the spec's failing threshold of failed attempts: it counts against
/// the error threshold but keeps retrying (unless the spec caps attempts).
/// </summary>
/// <param name="DeviceId">Device.</param>
/// <param name="Attempts">Its failed attempts when observed.</param>
/// <param name="Reason">Its last failure.</param>
/// <param name="At">When.</param>
public sealed record RolloutDeviceFailing(string DeviceId, int Attempts, string Reason, DateTimeOffset At) : IRolloutEvent;

/// <summary>The current wave reached its success threshold (the soak time starts).</summary>
/// <param name="Wave">Wave (0-based).</param>
/// <param name="At">When.</param>
public sealed record RolloutWaveThresholdMet(int Wave, DateTimeOffset At) : IRolloutEvent;

/// <summary>A wave began.</summary>
/// <param name="Wave">Wave (0-based).</param>
/// <param name="At">When.</param>
public sealed record RolloutWaveStarted(int Wave, DateTimeOffset At) : IRolloutEvent;

/// <summary>The rollout was paused.</summary>
/// <param name="Operator">Who (<c>system</c> for the error threshold).</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record RolloutPaused(string Operator, string Reason, DateTimeOffset At) : IRolloutEvent;

/// <summary>The rollout was resumed; failures so far are acknowledged.</summary>
/// <param name="Operator">Who.</param>
/// <param name="At">When.</param>
public sealed record RolloutResumed(string Operator, DateTimeOffset At) : IRolloutEvent;

/// <summary>The rollout was aborted; unfinished assignments are to be cancelled.</summary>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record RolloutAborted(string Operator, string Reason, DateTimeOffset At) : IRolloutEvent;

/// <summary>The rollout was rolled back; touched devices are to be assigned their previous version.</summary>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why.</param>
/// <param name="Versions">Published releases of the product at that time.</param>
/// <param name="At">When.</param>
public sealed record RolloutRolledBack(string Operator, string Reason, IReadOnlyList<RollbackVersion> Versions, DateTimeOffset At) : IRolloutEvent;

/// <summary>Every device acknowledged the abort's cancellation or the rollback's assignment.</summary>
/// <param name="Devices">How many devices were sent a command.</param>
/// <param name="At">When.</param>
public sealed record RolloutCommandsDelivered(int Devices, DateTimeOffset At) : IRolloutEvent;

/// <summary>Failed devices went back to their waves' queues.</summary>
/// <param name="Operator">Who.</param>
/// <param name="DeviceIds">The devices.</param>
/// <param name="At">When.</param>
public sealed record RolloutFailedDevicesRetried(string Operator, IReadOnlyList<string> DeviceIds, DateTimeOffset At) : IRolloutEvent;

/// <summary>Every device finished and the last wave met its threshold.</summary>
/// <param name="At">When.</param>
public sealed record RolloutCompleted(DateTimeOffset At) : IRolloutEvent;

/// <summary>The coordinator registered a new rollout id (it restarts the rollout's actor after a crash or hand-over).</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="At">When.</param>
public sealed record RolloutRegistered(string RolloutId, DateTimeOffset At) : IOrchestratorMessage;

/// <summary>One device in a rollout snapshot.</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="Wave">Wave (0-based).</param>
/// <param name="Outcome">Where it stands.</param>
/// <param name="PreviousVersionId">Version before the assignment (0 = none/unknown).</param>
/// <param name="FailureReason">Why it failed, if it did.</param>
/// <param name="AssignedAt">When the current assignment was accepted (null while pending; absent in snapshots older than the device timeout).</param>
/// <param name="FailingAttempts">While in progress: the failed attempts that made the device count as failing (0 = not failing).</param>
/// <param name="Rollback">After a rollback: whether the device is back on <paramref name="PreviousVersionId"/> (null when the rollback does not restore it).</param>
/// <param name="RollbackFailure">Why restoring it failed, if it did.</param>
public sealed record RolloutDeviceRecord(string DeviceId, int Wave, RolloutDeviceOutcome Outcome, long PreviousVersionId, string? FailureReason,
    DateTimeOffset? AssignedAt = null, int FailingAttempts = 0, RollbackOutcome? Rollback = null, string? RollbackFailure = null);

/// <summary>A rolled-back device is back on its previous version (it installed it through an authorized downgrade).</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="At">When the rollout saw it.</param>
public sealed record RolloutDeviceRestored(string DeviceId, DateTimeOffset At) : IRolloutEvent;

/// <summary>A rolled-back device did not get back to its previous version (retry policy exhausted, or its assignment was replaced).</summary>
/// <param name="DeviceId">Device.</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record RolloutDeviceRestoreFailed(string DeviceId, string Reason, DateTimeOffset At) : IRolloutEvent;

/// <summary>Snapshot of a rollout actor.</summary>
/// <param name="Spec">Spec.</param>
/// <param name="Status">Status.</param>
/// <param name="Started">True once the start time passed.</param>
/// <param name="CurrentWave">Current wave (0-based).</param>
/// <param name="WaveCount">Number of waves.</param>
/// <param name="PauseReason">Reason of the last pause/abort/rollback.</param>
/// <param name="Devices">Devices in assignment order.</param>
/// <param name="AcknowledgedFailures">Per wave: failures acknowledged by a resume.</param>
/// <param name="ThresholdMetAt">When the current wave met its threshold.</param>
/// <param name="CommandsPending">Abort/rollback commands not yet delivered.</param>
/// <param name="RollbackVersions">Releases for the rollback.</param>
/// <param name="CreatedAt">Created.</param>
/// <param name="UpdatedAt">Last event.</param>
public sealed record RolloutSnapshot(
    RolloutSpec Spec, RolloutStatus Status, bool Started, int CurrentWave, int WaveCount, string? PauseReason,
    IReadOnlyList<RolloutDeviceRecord> Devices, IReadOnlyList<int> AcknowledgedFailures, DateTimeOffset? ThresholdMetAt,
    bool CommandsPending, IReadOnlyList<RollbackVersion> RollbackVersions, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt) : IOrchestratorMessage;

/// <summary>Snapshot of the rollout coordinator.</summary>
/// <param name="RolloutIds">Every rollout id ever registered.</param>
public sealed record RolloutCoordinatorSnapshot(IReadOnlyList<string> RolloutIds) : IOrchestratorMessage;
