using Orchestrator.Messages.Protocol;

namespace Orchestrator.Messages.Devices;

// Persisted events of the device actor (journal payloads). Past tense; the serializer's manifest table names each
// one, and OrchestratorSerializer states how a shape may change (appended members with a meaning-preserving default,
// otherwise a new ".vN" record).

/// <summary>Marker for every persisted device event.</summary>
public interface IDeviceEvent : IOrchestratorMessage
{
    /// <summary>When it happened (gateway receive time for device reports, actor clock for timeouts).</summary>
    DateTimeOffset At { get; }
}

/// <summary>The device was registered with a product and tags.</summary>
/// <param name="Product">Product.</param>
/// <param name="Tags">Tags (replace earlier ones).</param>
/// <param name="At">When.</param>
public sealed record DeviceRegistered(string Product, IReadOnlyList<string> Tags, DateTimeOffset At) : IDeviceEvent;

/// <summary>The device checked in and was told what to do.</summary>
/// <param name="Product">Reported product.</param>
/// <param name="InstalledVersionId">Reported installed version ID.</param>
/// <param name="InventoryDigest">Reported digest.</param>
/// <param name="AgentVersion">Reported agent version.</param>
/// <param name="Decision">What the device was told.</param>
/// <param name="Work">The work it was given (null for None).</param>
/// <param name="At">When.</param>
/// <param name="RequestSequence">Sequence number of the device request that caused it (0: none, or written before the field
/// existed); recovery restores the actor's replay high-water mark from it.</param>
public sealed record DeviceCheckedIn(
    string Product, long InstalledVersionId, string InventoryDigest, string? AgentVersion, UpdateAction Decision, WorkItem? Work,
    DateTimeOffset At, long RequestSequence = 0) : IDeviceEvent;

/// <summary>A rollout assigned a target version.</summary>
/// <param name="Target">The assignment.</param>
/// <param name="At">When.</param>
public sealed record TargetAssigned(TargetAssignment Target, DateTimeOffset At) : IDeviceEvent;

/// <summary>An operator cancelled the assignment and any retrying work.</summary>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why.</param>
/// <param name="RolloutId">The rollout whose assignment was cancelled, if any.</param>
/// <param name="At">When.</param>
/// <param name="GaveUp">True when the rollout gave the device up: it counts as Failed, with <paramref name="Reason"/> as its last failure.</param>
public sealed record AssignmentCancelled(string Operator, string Reason, string? RolloutId, DateTimeOffset At, bool GaveUp = false) : IDeviceEvent;

/// <summary>The device reported progress.</summary>
/// <param name="Progress">The reported progress.</param>
/// <param name="At">When.</param>
/// <param name="RequestSequence">Sequence number of the device request that caused it (0: none, or written before the field
/// existed); recovery restores the actor's replay high-water mark from it.</param>
public sealed record ProgressRecorded(TransferProgress Progress, DateTimeOffset At, long RequestSequence = 0) : IDeviceEvent;

/// <summary>An attempt failed; <paramref name="Failure"/> holds the persisted attempt count and advised delay.</summary>
/// <param name="Failure">The failure.</param>
/// <param name="At">When.</param>
/// <param name="RequestSequence">Sequence number of the device request that caused it (0: none, or written before the field
/// existed); recovery restores the actor's replay high-water mark from it.</param>
public sealed record AttemptFailed(FailureInfo Failure, DateTimeOffset At, long RequestSequence = 0) : IDeviceEvent;

/// <summary>The device finished its work.</summary>
/// <param name="InstalledVersionId">Now installed.</param>
/// <param name="InventoryDigest">Digest of the new tree.</param>
/// <param name="Kind">Which work finished.</param>
/// <param name="At">When.</param>
/// <param name="RequestSequence">Sequence number of the device request that caused it (0: none, or written before the field
/// existed); recovery restores the actor's replay high-water mark from it.</param>
public sealed record WorkCompleted(long InstalledVersionId, string InventoryDigest, WorkKind Kind, DateTimeOffset At, long RequestSequence = 0) : IDeviceEvent;

/// <summary>The device was silent for longer than the offline timeout.</summary>
/// <param name="LastSeen">When it was last heard from.</param>
/// <param name="At">When the timeout fired.</param>
public sealed record DeviceWentOffline(DateTimeOffset? LastSeen, DateTimeOffset At) : IDeviceEvent;

/// <summary>An offline device was heard from again and resumed its previous status.</summary>
/// <param name="At">When.</param>
public sealed record DeviceCameBack(DateTimeOffset At) : IDeviceEvent;

/// <summary>
/// The device's credential was replaced, so sequence numbers start over: a re-provisioned device (new disk, no stored
/// sequence ceiling) signs with its clock, which may be below what the old installation used, and requests signed with
/// the old secret no longer authenticate, so nothing old can be replayed.
/// </summary>
/// <param name="Reason">Why (e.g. "credential rotated").</param>
/// <param name="At">When.</param>
public sealed record RequestSequenceReset(string Reason, DateTimeOffset At) : IDeviceEvent;

/// <summary>An operator moved the device to another product; its assignment and work were dropped with it.</summary>
/// <param name="PreviousProduct">The product before (null when none was recorded).</param>
/// <param name="Product">The new product.</param>
/// <param name="Operator">Who.</param>
/// <param name="At">When.</param>
public sealed record DeviceProductChanged(string? PreviousProduct, string Product, string Operator, DateTimeOffset At) : IDeviceEvent;

/// <summary>
/// The agent's own staleness changed: it reported (or stopped reporting) that it had no valid, fresh director-signed
/// directive for longer than its limit. Journaled only when the flag flips.
/// </summary>
/// <param name="Stale">True while the device says it is stale.</param>
/// <param name="At">When the check-in that said so arrived.</param>
public sealed record DeviceStaleChanged(bool Stale, DateTimeOffset At) : IDeviceEvent;

/// <summary>
/// The device's launcher reported that no source (free-zone copy, hidden backup, virtual copy) gave it a working
/// updater: the device runs its installed client but cannot update or repair itself until an operator repairs it.
/// Journaled when the device was not already recorded so, or the reason changed.
/// </summary>
/// <param name="Reason">What the launcher found.</param>
/// <param name="At">When the report arrived.</param>
/// <param name="RequestSequence">Sequence number of the device request that caused it (see <see cref="DeviceCheckedIn"/>).</param>
public sealed record DeviceUpdaterLost(string Reason, DateTimeOffset At, long RequestSequence = 0) : IDeviceEvent;

/// <summary>
/// A device recorded without a working updater checked in again: only a verified updater checks in, so it has one
/// again (repaired by an operator or from a reinstalled image).
/// </summary>
/// <param name="At">When the check-in arrived.</param>
public sealed record DeviceUpdaterRestored(DateTimeOffset At) : IDeviceEvent;

/// <summary>The device was retired by an operator; nothing the device sends is taken any more.</summary>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record DeviceDecommissioned(string Operator, string Reason, DateTimeOffset At) : IDeviceEvent;

/// <summary>
/// The device reported other attributes than recorded (journaled only when they change). They replace the reported ones
/// before; operator attributes are kept.
/// </summary>
/// <param name="Attributes">Everything the device now reports, sorted by key.</param>
/// <param name="At">When the check-in that carried them arrived.</param>
public sealed record DeviceAttributesReported(IReadOnlyDictionary<string, string> Attributes, DateTimeOffset At) : IDeviceEvent;

/// <summary>An operator changed the device's operator attributes.</summary>
/// <param name="Attributes">The operator attributes after the change (all of them), sorted by key.</param>
/// <param name="Operator">Who.</param>
/// <param name="At">When.</param>
public sealed record DeviceAttributesSet(IReadOnlyDictionary<string, string> Attributes, string Operator, DateTimeOffset At) : IDeviceEvent;
