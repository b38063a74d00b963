using System.Text.Json.Serialization;

namespace Orchestrator.Messages.Protocol;

// Device HTTP protocol, version 1 (docs/protocol.md). These DTOs travel as JSON over HTTP between the agent and
// the gateway; they are never persisted. Field names are part of the wire contract: rename only with a new
// protocol version.

/// <summary>What the server tells a device to do after a check-in.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<UpdateAction>))]
public enum UpdateAction
{
    /// <summary>Installed tree matches the assigned version: start the client program.</summary>
    None,
    /// <summary>A newer version is assigned: download what is missing and switch to it.</summary>
    Upgrade,
    /// <summary>Same version, but local files differ from the server's copy: restore exactly those files.</summary>
    Repair,
}

/// <summary>One local file as the agent sees it: relative path (forward slashes) and SHA-256 (lower-case hex).</summary>
public sealed record InventoryEntry(string Path, string Sha256);

/// <summary>Sent by the agent on every start: <c>POST /v1/devices/{deviceId}/check-in</c>.</summary>
/// <param name="Product">Product name the device runs.</param>
/// <param name="InstalledVersionId">Monotonic version ID of the installed release (0 when nothing is installed).</param>
/// <param name="InventoryDigest">Digest of the local tree, computed like the manifest's <c>inventoryDigest</c>.</param>
/// <param name="Files">Per-file hashes, so the server can name exactly the files a repair must restore.</param>
/// <param name="AgentVersion">Version of the agent binary, for fleet observability.</param>
/// <param name="Nonce">Fresh random value (32-64 lower-case hex) the signed directive of the answer must repeat; optional
/// only for agents provisioned with a bare release key.</param>
/// <param name="Stale">True when the agent has had no valid, fresh directive for longer than its configured limit.</param>
/// <param name="Attributes">Facts about the device (<see cref="DeviceAttributeRules"/>: <c>arch</c>, <c>os</c> and what the
/// device maker configured) that rollout selectors match on; null when the agent reports none.</param>
/// <param name="BatchDirectives">True when the agent verifies batch-signed directives (a Merkle inclusion proof under one
/// director signature, docs/protocol.md "Directive"); absent or false: the answer's directive is signed on its own.</param>
public sealed record CheckInRequest(
    string Product,
    long InstalledVersionId,
    string InventoryDigest,
    IReadOnlyList<InventoryEntry>? Files,
    string? AgentVersion,
    string? Nonce = null,
    bool? Stale = null,
    IReadOnlyDictionary<string, string>? Attributes = null,
    bool? BatchDirectives = null);

/// <summary>Download allowance for one update session ("control the download size").</summary>
/// <param name="MaxBytes">Total bytes the device may fetch in this window.</param>
/// <param name="BytesPerSecond">Rate the device must not exceed.</param>
/// <param name="ExpiresUtc">After this instant the device checks in again for a fresh grant.</param>
public sealed record DownloadGrant(long MaxBytes, long BytesPerSecond, DateTimeOffset ExpiresUtc);

/// <summary>Server's answer to a check-in. A field that is null is not written (readers take absent as null).</summary>
/// <param name="Action">None, Upgrade or Repair.</param>
/// <param name="TargetVersion">Version string of the release to install or repair against.</param>
/// <param name="TargetVersionId">Monotonic version ID of that release.</param>
/// <param name="ManifestPath">Store-relative manifest path, e.g. <c>manifests/acme/2.1.0.json</c>; the signature is at the same path + <c>.sig</c>.</param>
/// <param name="RepairFiles">For repair: the relative paths whose content differs or is missing.</param>
/// <param name="Grant">Download allowance for this session; null when there is nothing to download.</param>
/// <param name="NextCheckInSeconds">When the agent should check in again if it stays running.</param>
/// <param name="Mirrors">Plain HTTP base URLs serving the store layout, tried after the gateway fails (before it with <paramref name="MirrorsFirst"/>).</param>
/// <param name="DeltaManifestPath">
/// For an upgrade: store-relative path of a signed delta manifest from the device's reported installed version to
/// the target (<c>deltas/&lt;product&gt;/&lt;from&gt;/&lt;to&gt;.json</c>, signature at + <c>.sig</c>), when one is built; null
/// otherwise. Optional: agents that ignore it download chunks as before.
/// </param>
/// <param name="MirrorsFirst">Site policy (<c>Gateway:MirrorsFirst</c>): try <paramref name="Mirrors"/> before the gateway.</param>
/// <param name="Directive">
/// The director-signed directive (a signed envelope as JSON text, docs/protocol.md "Directive") answering this
/// check-in's nonce; authoritative over the unsigned fields above. Null when the request carried no nonce.
/// </param>
/// <param name="CompactManifests">
/// Compact encodings of the manifest at <paramref name="ManifestPath"/> the store holds (docs/store-format.md "Compact
/// manifests"), best first: the patch against the device's reported installed manifest
/// (<c>manifests/&lt;p&gt;/&lt;v&gt;.from-&lt;installedVersionId&gt;.zst</c>), then the whole frame (<c>….json.zst</c>). Unsigned and
/// optional: the agent checks what it decodes exactly as the plain JSON (length and SHA-256 the directive pins,
/// signature), so a wrong list costs at most a request; null or absent means fetch the JSON.
/// </param>
public sealed record CheckInResponse(
    UpdateAction Action,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TargetVersion,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? TargetVersionId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ManifestPath,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? RepairFiles,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DownloadGrant? Grant,
    int NextCheckInSeconds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Mirrors,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? DeltaManifestPath = null,
    bool MirrorsFirst = false,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Directive = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? CompactManifests = null);

/// <summary>Download progress: <c>POST /v1/devices/{deviceId}/progress</c>.</summary>
public sealed record ProgressReport(long TargetVersionId, long BytesDone, long BytesTotal, int ChunksDone, int ChunksTotal);

/// <summary>A failed attempt: <c>POST /v1/devices/{deviceId}/failure</c>. Stage is one of download, verify, install.</summary>
public sealed record FailureReport(long TargetVersionId, string Stage, string Reason, int Attempt);

/// <summary>Install finished and verified: <c>POST /v1/devices/{deviceId}/completion</c>.</summary>
/// <param name="InstalledVersionId">Version ID now installed.</param>
/// <param name="InventoryDigest">Digest of the installed tree.</param>
/// <param name="Method">Optional: <c>delta</c> when at least one file was rebuilt from a delta patch, else <c>chunks</c>.</param>
/// <param name="BytesDownloaded">Optional: bytes received from the network for this install (manifests, patches, chunks).</param>
public sealed record CompletionReport(long InstalledVersionId, string InventoryDigest, string? Method = null, long? BytesDownloaded = null)
{
    /// <summary><see cref="Method"/> when a delta patch was used.</summary>
    public const string MethodDelta = "delta";

    /// <summary><see cref="Method"/> when only chunks (and local files) were used.</summary>
    public const string MethodChunks = "chunks";
}

/// <summary>
/// The launcher found no working updater (free copy, hidden backup and virtual copy all unusable):
/// <c>POST /v1/devices/{deviceId}/updater-lost</c>. The device's next check-in (only a verified updater checks in)
/// clears it.
/// </summary>
/// <param name="Reason">What the launcher found, 1-2000 characters.</param>
public sealed record UpdaterLostReport(string Reason);

/// <summary>Uniform error body for every 4xx/5xx answer of the device API.</summary>
/// <param name="Error">Stable machine-readable code, e.g. <c>invalid_product</c>.</param>
/// <param name="Message">What was wrong with which input, and how to fix it.</param>
public sealed record ProblemResponse(string Error, string Message);
