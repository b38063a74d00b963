using Orchestrator.Messages.Protocol;

namespace Orchestrator.Messages.Devices;

// Commands to the sharded device actor. Every one is validated in its constructor (also when it is
// deserialized on the receiving node), so an invalid command never reaches the actor and changes no state.

/// <summary>A message routed to one device's actor by its id.</summary>
public interface IWithDeviceId
{
    /// <summary>The device id; see <see cref="DeviceIdRules.Pattern"/>.</summary>
    string DeviceId { get; }
}

/// <summary>Marker for every message the device actor accepts.</summary>
public interface IDeviceCommand : IWithDeviceId, IOrchestratorMessage;

/// <summary>Provisioning: records the device's product and operator tags (replaces earlier tags).</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Product">Product the device runs.</param>
/// <param name="Tags">Operator tags used by rollout selectors and the registry.</param>
/// <param name="Timestamp">When the registration happened.</param>
public sealed record RegisterDevice(string DeviceId, string Product, IReadOnlyList<string> Tags, DateTimeOffset Timestamp)
    : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Product the device runs.</summary>
    public string Product { get; } = DeviceIdRules.Required(Product, nameof(Product));
    /// <summary>Operator tags, de-duplicated, in the given order.</summary>
    public IReadOnlyList<string> Tags { get; } = ValidateTags(Tags);

    private static string[] ValidateTags(IReadOnlyList<string>? tags)
    {
        if (tags is null) return [];
        foreach (var t in tags)
            if (string.IsNullOrWhiteSpace(t) || t.Length > 128 || t.Any(char.IsWhiteSpace))
                throw new ArgumentException(
                    $"Invalid tag '{t}': tags must be 1-128 characters without whitespace.", nameof(Tags));
        return tags.Distinct(StringComparer.Ordinal).ToArray();
    }
}

/// <summary>
/// A device check-in, prepared by the gateway: it loaded the manifest of the installed version and compared
/// per-file hashes, so the actor decides without I/O.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Product">Product the device reports.</param>
/// <param name="InstalledVersionId">Installed version ID (0 when nothing is installed).</param>
/// <param name="InventoryDigest">Digest of the device's local tree.</param>
/// <param name="ExpectedDigest">Inventory digest of the installed version's manifest; null when the server does not know that version.</param>
/// <param name="InstalledVersion">Version string of the installed version's manifest; required with <paramref name="ExpectedDigest"/>.</param>
/// <param name="InstalledManifestPath">Store-relative manifest path of the installed version; required with <paramref name="ExpectedDigest"/>.</param>
/// <param name="DifferingFiles">Relative paths whose hash differs from the manifest or which are missing.</param>
/// <param name="AgentVersion">Version of the agent binary, if reported.</param>
/// <param name="Timestamp">When the gateway received the check-in.</param>
/// <param name="RequestSequence">The signed request's sequence number (protocol v2); the actor refuses one at or below the
/// last it accepted. 0: not from the device API (unchecked), and what payloads written before the field existed read as.</param>
/// <param name="Channels">
/// The channels of <paramref name="Product"/> as the gateway's channel cache knows them (null: the sender has no channel
/// information, and only a rollout's target can lead to an upgrade). Not persisted: the decision it leads to is.
/// </param>
/// <param name="Stale">The agent reports it has had no valid fresh directive for longer than its limit.</param>
/// <param name="Attributes">The attributes the device reports (<see cref="DeviceAttributeRules"/>); null when it reports none,
/// which leaves the recorded ones as they are.</param>
public sealed record CheckIn(
    string DeviceId,
    string Product,
    long InstalledVersionId,
    string InventoryDigest,
    string? ExpectedDigest,
    string? InstalledVersion,
    string? InstalledManifestPath,
    IReadOnlyList<string> DifferingFiles,
    string? AgentVersion,
    DateTimeOffset Timestamp,
    long RequestSequence = 0,
    IReadOnlyList<Channels.ChannelTarget>? Channels = null,
    bool Stale = false,
    IReadOnlyDictionary<string, string>? Attributes = null) : IDeviceCommand
{
    /// <summary>The reported attributes, sorted by key; null when the device reports none.</summary>
    public IReadOnlyDictionary<string, string>? Attributes { get; } =
        Attributes is null ? null : DeviceAttributeRules.Validate(Attributes, nameof(Attributes));
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Product the device reports.</summary>
    public string Product { get; } = DeviceIdRules.Required(Product, nameof(Product));
    /// <summary>Installed version ID (0 when nothing is installed).</summary>
    public long InstalledVersionId { get; } = DeviceIdRules.NonNegative(InstalledVersionId, nameof(InstalledVersionId));
    /// <summary>Digest of the device's local tree.</summary>
    public string InventoryDigest { get; } = DeviceIdRules.Required(InventoryDigest, nameof(InventoryDigest));
    /// <summary>Relative paths whose hash differs from the manifest.</summary>
    public IReadOnlyList<string> DifferingFiles { get; } = ValidateFiles(DifferingFiles, ExpectedDigest, InventoryDigest, InstalledVersion, InstalledManifestPath);

    /// <summary>True when the server knows the installed version and the device's tree differs from it.</summary>
    public bool NeedsRepair => ExpectedDigest is not null && !string.Equals(ExpectedDigest, InventoryDigest, StringComparison.Ordinal);

    private static string[] ValidateFiles(IReadOnlyList<string>? files, string? expected, string digest, string? version, string? manifestPath)
    {
        var list = files?.ToArray() ?? [];
        foreach (var f in list)
            if (string.IsNullOrWhiteSpace(f) || f.StartsWith('/') || f.Contains('\\') || f.Split('/').Contains(".."))
                throw new ArgumentException(
                    $"Invalid differing file path '{f}': paths are relative, use forward slashes and never contain '..'.", nameof(DifferingFiles));
        if (expected is not null)
        {
            if (string.IsNullOrWhiteSpace(version) || string.IsNullOrWhiteSpace(manifestPath))
                throw new ArgumentException(
                    "A check-in with ExpectedDigest must also carry InstalledVersion and InstalledManifestPath (from the same manifest), " +
                    "so a repair can name the manifest to restore from.", nameof(ExpectedDigest));
            if (!string.Equals(expected, digest, StringComparison.Ordinal) && list.Length == 0)
                throw new ArgumentException(
                    "InventoryDigest differs from ExpectedDigest but DifferingFiles is empty: the gateway must list the files to repair " +
                    "(the agent has to send per-file hashes).", nameof(DifferingFiles));
        }
        return list;
    }
}

/// <summary>Assigns a target version to the device (from a rollout).</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Product">Product of the target release.</param>
/// <param name="Version">Version string of the target.</param>
/// <param name="VersionId">Monotonic version ID of the target.</param>
/// <param name="ManifestPath">Store-relative manifest path of the target.</param>
/// <param name="RolloutId">The rollout that assigned it.</param>
/// <param name="BandwidthBytesPerSecond">
/// The rollout's cluster-wide egress cap (bytes/s shared by all its devices); 0 = no cap. Optional with a
/// default so "AssignTarget.v1" payloads written before the field existed still read.
/// </param>
/// <param name="AuthorizeDowngrade">
/// True when an operator's rollback assigns a version below the device's floor: the device's directive then carries a
/// downgrade authorization. Without it an assignment below the floor is refused (<c>below_floor</c>).
/// </param>
public sealed record AssignTarget(string DeviceId, string Product, string Version, long VersionId, string ManifestPath, string RolloutId,
    long BandwidthBytesPerSecond = 0, bool AuthorizeDowngrade = false)
    : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Product of the target release.</summary>
    public string Product { get; } = DeviceIdRules.Required(Product, nameof(Product));
    /// <summary>Version string of the target.</summary>
    public string Version { get; } = DeviceIdRules.Required(Version, nameof(Version));
    /// <summary>Monotonic version ID of the target.</summary>
    public long VersionId { get; } = DeviceIdRules.Positive(VersionId, nameof(VersionId));
    /// <summary>Store-relative manifest path of the target.</summary>
    public string ManifestPath { get; } = DeviceIdRules.Required(ManifestPath, nameof(ManifestPath));
    /// <summary>The rollout that assigned it.</summary>
    public string RolloutId { get; } = DeviceIdRules.Required(RolloutId, nameof(RolloutId));
    /// <summary>The rollout's cluster-wide egress cap in bytes/s; 0 = no cap.</summary>
    public long BandwidthBytesPerSecond { get; } = DeviceIdRules.NonNegative(BandwidthBytesPerSecond, nameof(BandwidthBytesPerSecond));
}

/// <summary>An operator cancels the device's assignment and any retrying work.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Operator">Who cancelled.</param>
/// <param name="Reason">Why.</param>
/// <param name="GiveUp">True when a rollout gives the device up (timed out, or its attempt cap was reached): the device then
/// shows as Failed with <paramref name="Reason"/> as its last failure until it gets new work.</param>
public sealed record CancelAssignment(string DeviceId, string Operator, string Reason, bool GiveUp = false) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Who cancelled.</summary>
    public string Operator { get; } = DeviceIdRules.Required(Operator, nameof(Operator));
}

/// <summary>Progress of the device's current work.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="TargetVersionId">Version ID the work targets (must match the active work).</param>
/// <param name="Phase">Download, verify or install.</param>
/// <param name="BytesDone">Bytes fetched so far.</param>
/// <param name="BytesTotal">Bytes to fetch in total.</param>
/// <param name="ChunksDone">Chunks fetched so far.</param>
/// <param name="ChunksTotal">Chunks to fetch in total.</param>
/// <param name="Timestamp">When the gateway received the report.</param>
/// <param name="RequestSequence">The signed request's sequence number (protocol v2); the actor refuses one at or below the
/// last it accepted. 0: not from the device API (unchecked), and what payloads written before the field existed read as.</param>
public sealed record ReportProgress(
    string DeviceId, long TargetVersionId, WorkPhase Phase, long BytesDone, long BytesTotal, int ChunksDone, int ChunksTotal,
    DateTimeOffset Timestamp, long RequestSequence = 0) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Bytes fetched so far.</summary>
    public long BytesDone { get; } = BytesDone >= 0 && BytesDone <= BytesTotal
        ? BytesDone
        : throw new ArgumentOutOfRangeException(nameof(BytesDone), BytesDone, $"BytesDone must be between 0 and BytesTotal ({BytesTotal}).");
    /// <summary>Chunks fetched so far.</summary>
    public int ChunksDone { get; } = ChunksDone >= 0 && ChunksDone <= ChunksTotal
        ? ChunksDone
        : throw new ArgumentOutOfRangeException(nameof(ChunksDone), ChunksDone, $"ChunksDone must be between 0 and ChunksTotal ({ChunksTotal}).");
}

/// <summary>A failed attempt of the device's current work; the reply carries the retry delay.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="TargetVersionId">Version ID the work targets (must match the active work).</param>
/// <param name="Stage">Where it failed.</param>
/// <param name="Reason">What went wrong, as the agent saw it.</param>
/// <param name="AgentAttempt">Attempt number as the agent counts it (informational; the actor's persisted count is authoritative).</param>
/// <param name="Timestamp">When the gateway received the report.</param>
/// <param name="RequestSequence">The signed request's sequence number (protocol v2); the actor refuses one at or below the
/// last it accepted. 0: not from the device API (unchecked), and what payloads written before the field existed read as.</param>
public sealed record ReportFailure(string DeviceId, long TargetVersionId, WorkPhase Stage, string Reason, int AgentAttempt, DateTimeOffset Timestamp,
    long RequestSequence = 0)
    : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>What went wrong, as the agent saw it.</summary>
    public string Reason { get; } = DeviceIdRules.Required(Reason, nameof(Reason));
}

/// <summary>The device installed and verified its work.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="InstalledVersionId">Version ID now installed (must match the active work).</param>
/// <param name="InventoryDigest">Digest of the new local tree.</param>
/// <param name="Timestamp">When the gateway received the report.</param>
/// <param name="RequestSequence">The signed request's sequence number (protocol v2); the actor refuses one at or below the
/// last it accepted. 0: not from the device API (unchecked), and what payloads written before the field existed read as.</param>
public sealed record ReportCompletion(string DeviceId, long InstalledVersionId, string InventoryDigest, DateTimeOffset Timestamp,
    long RequestSequence = 0)
    : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Digest of the new local tree.</summary>
    public string InventoryDigest { get; } = DeviceIdRules.Required(InventoryDigest, nameof(InventoryDigest));
}

/// <summary>
/// The device's launcher reports that no source gave it a working updater (it started the client without an update
/// session); answered with <see cref="DeviceCommandAccepted"/>. It changes only this device's updater state.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Reason">What the launcher found (1-2000 characters).</param>
/// <param name="Timestamp">When the gateway received it.</param>
/// <param name="RequestSequence">The signed request's sequence number (protocol v2); 0 when not from the device API.</param>
public sealed record ReportUpdaterLost(string DeviceId, string Reason, DateTimeOffset Timestamp, long RequestSequence = 0) : IDeviceCommand
{
    /// <summary>Longest reason kept.</summary>
    public const int MaxReasonLength = 2000;

    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>What the launcher found.</summary>
    public string Reason { get; } = DeviceIdRules.Required(Reason, nameof(Reason)).Length <= MaxReasonLength
        ? Reason
        : throw new ArgumentException($"Reason has {Reason.Length} characters; at most {MaxReasonLength} are kept.", nameof(Reason));
}

/// <summary>Starts the device's request sequence over (its credential was just replaced); answered with <see cref="DeviceCommandAccepted"/>.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Reason">Why.</param>
/// <param name="Timestamp">When.</param>
public sealed record ResetRequestSequence(string DeviceId, string Reason, DateTimeOffset Timestamp) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Why.</summary>
    public string Reason { get; } = DeviceIdRules.Required(Reason, nameof(Reason));
}

/// <summary>Asks for the device's full state; answered with <see cref="DeviceState"/>.</summary>
/// <param name="DeviceId">Device id.</param>
public sealed record GetDeviceState(string DeviceId) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
}

/// <summary>An operator moves the device to another product (the only way its registered product changes).</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Product">The new product.</param>
/// <param name="Operator">Who changed it.</param>
/// <param name="Timestamp">When.</param>
public sealed record SetDeviceProduct(string DeviceId, string Product, string Operator, DateTimeOffset Timestamp) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>The new product.</summary>
    public string Product { get; } = DeviceIdRules.Required(Product, nameof(Product));
    /// <summary>Who changed it.</summary>
    public string Operator { get; } = DeviceIdRules.Required(Operator, nameof(Operator));
}

/// <summary>
/// Sent by a node's silence watch (<c>DeviceSilenceWatch</c>) when a device whose actor passivated while idle has been
/// silent for the offline timeout: wakes the actor (recovering it if needed), which marks the device Offline if it
/// really was silent that long and does nothing otherwise. Not device traffic: it never counts as proof of life.
/// </summary>
/// <param name="DeviceId">Device id.</param>
public sealed record CheckSilence(string DeviceId) : IWithDeviceId, IOrchestratorMessage
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
}

/// <summary>
/// An operator retires the device for good (<c>orch device decommission</c>): its assignment and work end, every later
/// device command is refused, and it leaves the fleet views; its journal is kept. The node revokes its credential first.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Operator">Who (the admin token's name).</param>
/// <param name="Reason">Why (kept in the history).</param>
/// <param name="Timestamp">When.</param>
public sealed record DecommissionDevice(string DeviceId, string Operator, string Reason, DateTimeOffset Timestamp) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
}

/// <summary>
/// An operator sets and removes attributes of the device (<c>orch device attributes</c>); answered with
/// <see cref="DeviceCommandAccepted"/>. Operator attributes override reported ones of the same key.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Set">Attributes to set (replacing an operator value of the same key).</param>
/// <param name="Remove">Operator attribute keys to remove (a reported attribute of that key shows again).</param>
/// <param name="Operator">Who (the admin token's name).</param>
/// <param name="Timestamp">When.</param>
public sealed record SetDeviceAttributes(string DeviceId, IReadOnlyDictionary<string, string> Set, IReadOnlyList<string> Remove, string Operator,
    DateTimeOffset Timestamp) : IDeviceCommand
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Attributes to set, sorted by key.</summary>
    public IReadOnlyDictionary<string, string> Set { get; } = DeviceAttributeRules.Validate(Set, nameof(Set));
    /// <summary>Keys to remove.</summary>
    public IReadOnlyList<string> Remove { get; } = ValidateRemove(Remove, Set);
    /// <summary>Who.</summary>
    public string Operator { get; } = DeviceIdRules.Required(Operator, nameof(Operator));

    private static string[] ValidateRemove(IReadOnlyList<string>? remove, IReadOnlyDictionary<string, string>? set)
    {
        var keys = remove?.Distinct(StringComparer.Ordinal).ToArray() ?? [];
        foreach (var k in keys)
        {
            if (!DeviceAttributeRules.IsValidKey(k))
                throw new ArgumentException($"Attribute key '{k}' to remove is invalid: keys match {DeviceAttributeRules.KeyPattern}.", nameof(Remove));
            if (set?.ContainsKey(k) == true)
                throw new ArgumentException($"Attribute '{k}' is both set and removed; give it once.", nameof(Remove));
        }
        if (keys.Length == 0 && (set is null || set.Count == 0))
            throw new ArgumentException("Nothing to change: give attributes to set (key=value) or keys to remove.", nameof(Set));
        return keys;
    }
}

/// <summary>
/// Sent after events were written to the device's journal without its actor (the bulk registration writes a new
/// device's first event straight through the journal): an actor that holds fewer than <paramref name="JournaledUpTo"/>
/// events recovered before they were written, so it passivates and the next message recovers them; an actor that has
/// them does nothing. Not device traffic.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="JournaledUpTo">Highest sequence number written without the actor.</param>
public sealed record RecoverDevice(string DeviceId, long JournaledUpTo) : IWithDeviceId, IOrchestratorMessage
{
    /// <inheritdoc />
    public string DeviceId { get; } = DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
}
