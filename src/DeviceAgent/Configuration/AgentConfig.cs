using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.DeviceAgent.Configuration;

/// <summary>
/// The agent's configuration file (<c>agent.json</c>, normally in the read-only virtual zone, or given with
/// <c>--config</c>). Relative zone paths are resolved against the folder that holds the file.
/// </summary>
public sealed record AgentConfig
{
    // Optional properties have setters, not init accessors: source-generated JSON assigns init-only properties in
    // its object initializer, so a property missing from the file would lose its default.
    /// <summary>Device identity as the gateway knows it (letters, digits, '-', '_', '.').</summary>
    public required string DeviceId { get; init; }

    /// <summary>Product the device runs; manifests for other products are rejected.</summary>
    public required string Product { get; init; }

    /// <summary>Where the three zones live.</summary>
    public required ZonePaths Zones { get; init; }

    /// <summary>File whose bytes seed the device key that encrypts the hidden zone (e.g. /etc/machine-id).</summary>
    public required string MachineSecretFile { get; init; }

    /// <summary>Gateway base URL (e.g. <c>http://gw:8080/</c>); null runs mirror-only (no check-in possible).</summary>
    public string? Gateway { get; set; }

    /// <summary>Plain HTTP base URLs serving the store layout, tried in order after the gateway.</summary>
    public IReadOnlyList<string> Mirrors { get; set; } = [];

    /// <summary>Client program to start after the session, relative to the installed tree; null starts nothing.</summary>
    public string? ClientCommand { get; set; }

    /// <summary>Arguments for <see cref="ClientCommand"/>.</summary>
    public IReadOnlyList<string> ClientArguments { get; set; } = [];

    /// <summary>
    /// The updater program, relative to the free-zone updater folder (e.g. <c>orch-agent</c>): after self-repair the
    /// launcher starts it as its own process (<c>update --config FILE</c>) to run the update session. Null runs the
    /// session in the launcher's process (images without a separate updater program).
    /// </summary>
    public string? UpdaterCommand { get; set; }

    /// <summary>
    /// Device identity of the updater's own release track (e.g. <c>dev-0001.updater</c>): the updater is a product of its
    /// own, rolled out to this identity. Null (with <see cref="UpdaterProduct"/>) means the updater changes only with the image.
    /// </summary>
    public string? UpdaterDeviceId { get; set; }

    /// <summary>The updater product (e.g. <c>orch-updater</c>); set together with <see cref="UpdaterDeviceId"/>.</summary>
    public string? UpdaterProduct { get; set; }

    /// <summary>Download and retry tuning.</summary>
    public DownloadSettings Download { get; set; } = new();

    /// <summary>
    /// Minutes without a valid, fresh director-signed directive after which the agent reports itself stale (log,
    /// <c>orch-agent status</c>, and <c>stale: true</c> on its next check-in). Default 60; 1..10080.
    /// </summary>
    public int StaleAfterMinutes { get; set; } = 60;

    /// <summary>
    /// Facts about this device that the node's rollout selectors and groups match on (e.g. <c>site</c>, <c>hardware</c>),
    /// reported on every check-in next to the agent's own <c>arch</c> and <c>os</c> (a configured key overrides those).
    /// Keys follow <see cref="Orchestrator.Messages.Protocol.DeviceAttributeRules.KeyPattern"/>.
    /// </summary>
    public IReadOnlyDictionary<string, string> Attributes { get; set; } = new Dictionary<string, string>();

    /// <summary>What the agent reports on check-in: <c>arch</c> and <c>os</c> of this build, overridden by <see cref="Attributes"/>.</summary>
    public IReadOnlyDictionary<string, string> ReportedAttributes()
    {
        var reported = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["arch"] = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
            ["os"] = OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macos" : "other",
        };
        foreach (var (k, v) in Attributes) reported[k] = v;
        return reported;
    }

    /// <summary>Path of the file this configuration was read from (set by <see cref="Load"/>).</summary>
    [JsonIgnore]
    public string? SourcePath { get; set; }

    /// <summary>Reads and validates a configuration file; relative zone paths become absolute.</summary>
    /// <exception cref="AgentConfigException">The file is missing, malformed or has an invalid value.</exception>
    public static AgentConfig Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new AgentConfigException($"agent config '{full}' does not exist; pass --config <file> or put agent.json in the virtual zone");
        AgentConfig? config;
        try
        {
            config = JsonSerializer.Deserialize(File.ReadAllText(full), AgentConfigJsonContext.Default.AgentConfig);
        }
        catch (JsonException e)
        {
            throw new AgentConfigException($"agent config '{full}' is not valid: {e.Message}");
        }
        if (config is null)
            throw new AgentConfigException($"agent config '{full}' is empty; it must be a JSON object");
        var baseDir = Path.GetDirectoryName(full)!;
        config = config with
        {
            SourcePath = full,
            Zones = new ZonePaths(
                Path.GetFullPath(config.Zones.Virtual, baseDir),
                Path.GetFullPath(config.Zones.Hidden, baseDir),
                Path.GetFullPath(config.Zones.Free, baseDir)),
            MachineSecretFile = Path.GetFullPath(config.MachineSecretFile, baseDir),
        };
        config.Validate();
        return config;
    }

    /// <summary>Writes this configuration as JSON (used by provisioning and tests).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, AgentConfigJsonContext.Default.AgentConfig);

    /// <summary>Checks every value and names the first bad one.</summary>
    /// <exception cref="AgentConfigException">A value is invalid.</exception>
    public void Validate()
    {
        var where = SourcePath ?? "agent config";
        if (string.IsNullOrWhiteSpace(DeviceId) || DeviceId.Length > 128 ||
            !DeviceId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new AgentConfigException($"{where}: deviceId '{DeviceId}' is invalid; use 1-128 letters, digits, '-', '_' or '.'");
        if (string.IsNullOrWhiteSpace(Product) || !Product.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new AgentConfigException($"{where}: product '{Product}' is invalid; use letters, digits, '-', '_' or '.'");
        if (Zones is null || string.IsNullOrWhiteSpace(Zones.Virtual) || string.IsNullOrWhiteSpace(Zones.Hidden) || string.IsNullOrWhiteSpace(Zones.Free))
            throw new AgentConfigException($"{where}: zones.virtual, zones.hidden and zones.free are all required");
        var distinct = new[] { Zones.Virtual, Zones.Hidden, Zones.Free }.Select(p => Path.TrimEndingDirectorySeparator(p)).Distinct().Count();
        if (distinct != 3)
            throw new AgentConfigException($"{where}: the three zones must be different folders (virtual '{Zones.Virtual}', hidden '{Zones.Hidden}', free '{Zones.Free}')");
        if (string.IsNullOrWhiteSpace(MachineSecretFile))
            throw new AgentConfigException($"{where}: machineSecretFile is required (a file only this machine has, e.g. /etc/machine-id)");
        if (Gateway is not null) CheckUrl(where, "gateway", Gateway);
        foreach (var m in Mirrors) CheckUrl(where, "mirrors[]", m);
        if (Gateway is null && Mirrors.Count == 0)
            throw new AgentConfigException($"{where}: set gateway or at least one mirror, otherwise nothing can be downloaded");
        if (ClientCommand is not null && (Path.IsPathRooted(ClientCommand) || ClientCommand.Split('/', '\\').Contains("..")))
            throw new AgentConfigException($"{where}: clientCommand '{ClientCommand}' must be a path inside the installed tree (relative, no '..')");
        if (UpdaterCommand is not null && (UpdaterCommand.Length == 0 || Path.IsPathRooted(UpdaterCommand) || UpdaterCommand.Split('/', '\\').Contains("..")))
            throw new AgentConfigException($"{where}: updaterCommand '{UpdaterCommand}' must be a path inside the updater folder (relative, no '..')");
        if ((UpdaterDeviceId is null) != (UpdaterProduct is null))
            throw new AgentConfigException($"{where}: set updaterDeviceId and updaterProduct together (the updater's own release track) or neither");
        if (UpdaterDeviceId is not null)
        {
            if (UpdaterCommand is null)
                throw new AgentConfigException($"{where}: updaterDeviceId needs updaterCommand: a new updater release is started in self-test mode before it is switched in");
            if (UpdaterDeviceId == DeviceId || UpdaterDeviceId.Length > 128 || !UpdaterDeviceId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                throw new AgentConfigException($"{where}: updaterDeviceId '{UpdaterDeviceId}' is invalid; use 1-128 letters, digits, '-', '_' or '.', different from deviceId");
            if (UpdaterProduct!.Length == 0 || UpdaterProduct == Product || !UpdaterProduct.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                throw new AgentConfigException($"{where}: updaterProduct '{UpdaterProduct}' is invalid; use letters, digits, '-', '_' or '.', different from product");
        }
        Download.Validate(where);
        if (Orchestrator.Messages.Protocol.DeviceAttributeRules.Problem($"{where}: attributes", Attributes) is { } badAttributes)
            throw new AgentConfigException(badAttributes);
        if (Attributes.Count > Orchestrator.Messages.Protocol.DeviceAttributeRules.MaxCount - 2)
            throw new AgentConfigException($"{where}: attributes has {Attributes.Count} entries; at most " +
                $"{Orchestrator.Messages.Protocol.DeviceAttributeRules.MaxCount - 2} (the agent adds arch and os)");
        if (StaleAfterMinutes is < 1 or > 10080)
            throw new AgentConfigException($"{where}: staleAfterMinutes {StaleAfterMinutes} is out of range; use 1..10080 (default 60)");
    }

    private static void CheckUrl(string where, string field, string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new AgentConfigException($"{where}: {field} '{value}' is not an absolute http(s) URL");
    }
}

/// <summary>The three storage zones of the seed method.</summary>
/// <param name="Virtual">Read-only: launcher, configuration, plain updater copy, trust root.</param>
/// <param name="Hidden">Encrypted: updater backup, installed version ID, trust root, content key, device credential.</param>
/// <param name="Free">Writable: installed client program, updater working copy, staging, chunk cache, journal.</param>
public sealed record ZonePaths(string Virtual, string Hidden, string Free);

/// <summary>Download, retry and abuse-guard tuning.</summary>
public sealed record DownloadSettings
{
    /// <summary>First retry delay in milliseconds.</summary>
    public int BackoffBaseMilliseconds { get; set; } = 500;

    /// <summary>Largest retry delay in milliseconds (the cap of the exponential backoff).</summary>
    public int BackoffCapMilliseconds { get; set; } = 60_000;

    /// <summary>Failed session attempts before the agent gives up for this start (server pacing is no failure); 0 retries until success.</summary>
    public int MaxSessionAttempts { get; set; }

    /// <summary>A response slower than this (averaged over <see cref="MinRateWindowSeconds"/>) is aborted.</summary>
    public long MinBytesPerSecond { get; set; } = 1024;

    /// <summary>Window over which the minimum rate is measured; also the grace period at the start of a response.</summary>
    public double MinRateWindowSeconds { get; set; } = 10;

    /// <summary>Timeout for response headers of one request.</summary>
    public double RequestTimeoutSeconds { get; set; } = 30;

    /// <summary>Largest manifest (or signature) the agent accepts, in bytes.</summary>
    public long MaxManifestBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Concurrent chunk downloads.</summary>
    public int Parallelism { get; set; } = 4;

    /// <summary>
    /// Largest memory one delta patch may need (source, patch and result held at once,
    /// <see cref="Orchestrator.ChunkStore.Deltas.DeltaApplier.MemoryNeeded"/>); a larger file is installed from chunks,
    /// which stream in bounded memory. Default 64 MiB.
    /// </summary>
    public long MaxDeltaApplyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Largest zstd window a delta may declare, in bytes (2^windowLog): a whole-release delta's reference and decoded
    /// stream are a memory-mapped file of up to that size (file-backed pages, not heap), and the decoder refuses any
    /// frame whose window exceeds the declared one. A delta declaring more is not used; its files come from chunks.
    /// Default 1 GiB, the largest window the format allows.
    /// </summary>
    public long MaxDeltaWindowBytes { get; set; } = Orchestrator.ChunkStore.Deltas.PatchCodec.MaxPatchInput;

    /// <summary>
    /// How long one chunk's transfer runs before its received bytes are kept in a part file (and again after every
    /// further interval): a killed agent loses at most this much of each transfer in flight, and a chunk that arrives
    /// within it is written to disk once, in its place in the tree. Default 1000 ms.
    /// </summary>
    public int PartialCheckpointMilliseconds { get; set; } = 1000;

    /// <summary>Try the mirrors before the gateway (a site policy; the node can also ask for it at check-in).</summary>
    public bool MirrorsFirst { get; set; }

    internal void Validate(string where)
    {
        if (BackoffBaseMilliseconds <= 0 || BackoffCapMilliseconds < BackoffBaseMilliseconds)
            throw new AgentConfigException($"{where}: download.backoffBaseMilliseconds must be > 0 and <= download.backoffCapMilliseconds");
        if (MaxSessionAttempts < 0)
            throw new AgentConfigException($"{where}: download.maxSessionAttempts must be >= 0 (0 = retry until success)");
        if (MinBytesPerSecond < 0 || MinRateWindowSeconds <= 0)
            throw new AgentConfigException($"{where}: download.minBytesPerSecond must be >= 0 and download.minRateWindowSeconds > 0");
        if (RequestTimeoutSeconds <= 0)
            throw new AgentConfigException($"{where}: download.requestTimeoutSeconds must be > 0");
        if (MaxManifestBytes <= 0)
            throw new AgentConfigException($"{where}: download.maxManifestBytes must be > 0");
        if (MaxDeltaApplyBytes < 0)
            throw new AgentConfigException($"{where}: download.maxDeltaApplyBytes must be >= 0 (0 never applies a delta patch)");
        if (MaxDeltaWindowBytes < 0)
            throw new AgentConfigException($"{where}: download.maxDeltaWindowBytes must be >= 0 (0 never applies a delta; default {Orchestrator.ChunkStore.Deltas.PatchCodec.MaxPatchInput})");
        if (PartialCheckpointMilliseconds <= 0)
            throw new AgentConfigException($"{where}: download.partialCheckpointMilliseconds must be > 0 (how much of a transfer a kill may lose)");
        if (Parallelism is < 1 or > 64)
            throw new AgentConfigException($"{where}: download.parallelism must be between 1 and 64");
    }
}

/// <summary>The configuration file is missing or invalid; the message names the field and the fix.</summary>
public sealed class AgentConfigException(string message) : Exception(message);
