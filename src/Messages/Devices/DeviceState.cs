using Orchestrator.Messages.Protocol;

namespace Orchestrator.Messages.Devices;

/// <summary>The version a rollout assigned to a device.</summary>
/// <param name="Product">Product of the release.</param>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Monotonic version ID.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
/// <param name="RolloutId">Rollout that assigned it.</param>
/// <param name="BandwidthBytesPerSecond">The rollout's cluster-wide egress cap in bytes/s; 0 = no cap (and the
/// value read from events and snapshots written before the field existed).</param>
/// <param name="Downgrade">True when an operator's rollback authorized installing this version below the device's floor.</param>
public sealed record TargetAssignment(string Product, string Version, long VersionId, string ManifestPath, string RolloutId,
    long BandwidthBytesPerSecond = 0, bool Downgrade = false);

/// <summary>The work the device was told to do.</summary>
/// <param name="Kind">Upgrade or repair.</param>
/// <param name="Version">Version string to install or restore.</param>
/// <param name="VersionId">Its version ID.</param>
/// <param name="ManifestPath">Its manifest path.</param>
/// <param name="RepairFiles">For a repair: exactly the files to restore; empty for an upgrade.</param>
public sealed record WorkItem(WorkKind Kind, string Version, long VersionId, string ManifestPath, IReadOnlyList<string> RepairFiles);

/// <summary>Last reported progress of the current work.</summary>
/// <param name="Phase">Download, verify or install.</param>
/// <param name="BytesDone">Bytes fetched so far.</param>
/// <param name="BytesTotal">Bytes to fetch in total.</param>
/// <param name="ChunksDone">Chunks fetched so far.</param>
/// <param name="ChunksTotal">Chunks to fetch in total.</param>
public sealed record TransferProgress(WorkPhase Phase, long BytesDone, long BytesTotal, int ChunksDone, int ChunksTotal);

/// <summary>The last failed attempt.</summary>
/// <param name="Stage">Where it failed.</param>
/// <param name="Reason">What the agent reported.</param>
/// <param name="Attempt">Persisted attempt count at that failure (1-based).</param>
/// <param name="RetryAfterMs">The delay the device was told to wait.</param>
/// <param name="At">When it was reported.</param>
public sealed record FailureInfo(WorkPhase Stage, string Reason, int Attempt, long RetryAfterMs, DateTimeOffset At);

/// <summary>The device's launcher found no working updater.</summary>
/// <param name="Reason">What it reported.</param>
/// <param name="At">When the report arrived.</param>
public sealed record UpdaterLoss(string Reason, DateTimeOffset At);

/// <summary>
/// Full state of one device actor: the snapshot payload and the answer to <see cref="GetDeviceState"/>.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Status">Where the device stands.</param>
/// <param name="Product">Product, once registered or checked in.</param>
/// <param name="Tags">Operator tags.</param>
/// <param name="InstalledVersionId">Installed version ID as last reported.</param>
/// <param name="InventoryDigest">Inventory digest as last reported.</param>
/// <param name="AgentVersion">Agent version as last reported.</param>
/// <param name="Target">Assigned target, if any.</param>
/// <param name="Work">Current work, if any.</param>
/// <param name="Progress">Progress of the current work, if reported.</param>
/// <param name="FailedAttempts">Failed attempts of the current work (persisted; reset on completion, new work or cancel).</param>
/// <param name="LastFailure">The last failure of the current work.</param>
/// <param name="StatusBeforeOffline">While Offline: the status to resume.</param>
/// <param name="LastSeen">When the device was last heard from.</param>
/// <param name="EventCount">Sequence number of the last event applied (journal position of this device).</param>
/// <param name="LastRequestSequence">Highest device request sequence number the actor accepted (protocol v2 replay
/// protection); requests at or below it are refused. 0 in snapshots written before the field existed.</param>
/// <param name="FloorVersionId">
/// Rollback floor: the highest version ID the device is known to have installed; lowered only when an authorized
/// downgrade completed. Signed into every directive, so a device whose own record was lost or replaced learns it.
/// </param>
/// <param name="Stale">The device's last check-in said it had no valid fresh directive for longer than its limit.</param>
/// <param name="UpdaterLost">Set while the device's launcher reports no working updater (cleared by its next check-in).</param>
/// <param name="Decommissioned">When an operator retired the device (its history is kept; it is refused from then on).</param>
/// <param name="ReportedAttributes">Attributes the device reported last (null: none yet).</param>
/// <param name="OperatorAttributes">Attributes operators set (null: none).</param>
public sealed record DeviceState(
    string DeviceId,
    DeviceStatus Status,
    string? Product,
    IReadOnlyList<string> Tags,
    long InstalledVersionId,
    string? InventoryDigest,
    string? AgentVersion,
    TargetAssignment? Target,
    WorkItem? Work,
    TransferProgress? Progress,
    int FailedAttempts,
    FailureInfo? LastFailure,
    DeviceStatus? StatusBeforeOffline,
    DateTimeOffset? LastSeen,
    long EventCount,
    long LastRequestSequence = 0,
    long FloorVersionId = 0,
    bool Stale = false,
    UpdaterLoss? UpdaterLost = null,
    DateTimeOffset? Decommissioned = null,
    IReadOnlyDictionary<string, string>? ReportedAttributes = null,
    IReadOnlyDictionary<string, string>? OperatorAttributes = null) : IOrchestratorMessage
{
    /// <summary>The device's attributes: reported ones overridden by operator ones (derived; written in JSON, ignored when read).</summary>
    public IReadOnlyDictionary<string, string> Attributes => Protocol.DeviceAttributeRules.Effective(ReportedAttributes, OperatorAttributes);

    /// <summary>The channel the device belongs to (from its <c>channel:NAME</c> tag, else <c>stable</c>); derived from the tags (written in JSON, ignored when read).</summary>
    public string Channel => Orchestrator.Messages.Channels.ChannelRules.ChannelOf(Tags);

    /// <summary>The state of a device nothing is known about.</summary>
    public static DeviceState Initial(string deviceId) =>
        new(DeviceIdRules.Validate(deviceId), DeviceStatus.Unknown, null, [], 0, null, null, null, null, null, 0, null, null, null, 0);
}

/// <summary>
/// Snapshot of a device actor: its state and when the device was last heard from. <see cref="DeviceState.LastSeen"/>
/// is the journaled time, which lags behind idle check-ins (they are journaled at most every
/// <c>LastSeenPersistInterval</c>); <paramref name="LastHeard"/> is the actor's own clock at the last device request,
/// so an actor recovered after it passivated while idle measures the device's silence from the right moment.
/// Snapshots written before this type existed are plain <see cref="DeviceState"/>.
/// </summary>
/// <param name="State">The device state.</param>
/// <param name="LastHeard">When the actor last received a request from the device; null if never since it was created.</param>
public sealed record DeviceSnapshot(DeviceState State, DateTimeOffset? LastHeard) : IOrchestratorMessage;

/// <summary>The actor's answer to a <see cref="CheckIn"/>; the gateway maps it 1:1 to <see cref="CheckInResponse"/>.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Action">None, Upgrade or Repair.</param>
/// <param name="TargetVersion">Version string for Upgrade/Repair.</param>
/// <param name="TargetVersionId">Version ID for Upgrade/Repair.</param>
/// <param name="ManifestPath">Manifest path for Upgrade/Repair.</param>
/// <param name="RepairFiles">For Repair: exactly the files to restore; otherwise empty.</param>
/// <param name="Status">Device status after the check-in.</param>
/// <param name="RolloutId">For Upgrade: the rollout whose work it is (the gateway meters its egress); otherwise null.</param>
/// <param name="BandwidthBytesPerSecond">For Upgrade: that rollout's cluster-wide egress cap in bytes/s; 0 = no cap.</param>
/// <param name="Downgrade">For Upgrade: the target is older than the installed version (decided by <c>ReleaseSelection.IsDowngrade</c>).</param>
/// <param name="Source">For Upgrade: <c>rollout</c> or <c>channel</c>, where the target came from; otherwise null.</param>
/// <param name="FloorVersionId">The device's rollback floor (<see cref="DeviceState.FloorVersionId"/>), for the directive.</param>
/// <param name="Product">The device's registered product, for the directive.</param>
/// <param name="AuthorizedDowngrade">For Upgrade: the target is below the floor by an operator's authorized rollback of
/// <paramref name="RolloutId"/>; the directive then carries the downgrade authorization.</param>
public sealed record CheckInDecision(
    string DeviceId, UpdateAction Action, string? TargetVersion, long? TargetVersionId, string? ManifestPath,
    IReadOnlyList<string> RepairFiles, DeviceStatus Status, string? RolloutId = null, long BandwidthBytesPerSecond = 0,
    bool Downgrade = false, string? Source = null, long FloorVersionId = 0, string? Product = null, bool AuthorizedDowngrade = false) : IOrchestratorMessage;

/// <summary>A command was accepted (and persisted, if it changed anything).</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Status">Device status after the command.</param>
public sealed record DeviceCommandAccepted(string DeviceId, DeviceStatus Status) : IOrchestratorMessage;

/// <summary>Answer to <see cref="ReportFailure"/>: wait this long, then retry.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Attempt">Persisted failed-attempt count (1-based).</param>
/// <param name="RetryAfterMs">Capped exponential backoff with jitter.</param>
public sealed record RetryAdvice(string DeviceId, int Attempt, long RetryAfterMs) : IOrchestratorMessage;

/// <summary>
/// The actor's answer to a <see cref="CheckIn"/> that arrives before the retry delay announced after the last failed
/// attempt is over: the same work is not handed out again yet, and nothing is persisted. The gateway answers
/// 429 <c>retry_later</c> with <c>Retry-After</c>.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Attempt">Persisted failed-attempt count.</param>
/// <param name="RetryAfterMs">What is left of the announced delay.</param>
public sealed record CheckInDeferred(string DeviceId, int Attempt, long RetryAfterMs) : IOrchestratorMessage;

/// <summary>A command was refused; nothing changed.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Code">Stable machine-readable code, e.g. <c>no_active_work</c>.</param>
/// <param name="Message">What was wrong and how to fix it.</param>
public sealed record DeviceCommandRejected(string DeviceId, string Code, string Message) : IOrchestratorMessage;
