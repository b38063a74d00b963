using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Deltas;

/// <summary>Configuration section <c>Deltas</c>: fleet-aware delta precomputation when a rollout starts.</summary>
public sealed class DeltaOptions
{
    /// <summary>Section name.</summary>
    public const string Section = "Deltas";

    /// <summary>Key folder (<c>orch keys init</c>) with the content key and the release signing key; null disables deltas.</summary>
    public string? KeysDirectory { get; set; }

    /// <summary>Most source versions a rollout gets deltas from (the most common installed versions first).</summary>
    public int MaxSources { get; set; } = 3;

    /// <summary>Stop adding sources once this fraction of the targeted devices is covered.</summary>
    public double Coverage { get; set; } = 0.95;

    /// <summary>zstd level of the patches (1..22); unset (the default) takes the highest level whose build fits <see cref="MemoryBudgetBytes"/>.</summary>
    public int? Level { get; set; }

    /// <summary>
    /// Bytes one delta build may hold (<see cref="DeltaMemory"/>: the release bytes it codes plus a zstd context and
    /// output per frame or patch in flight); decides the level when <see cref="Level"/> is unset and lowers
    /// <see cref="Parallelism"/> to what fits.
    /// </summary>
    public long MemoryBudgetBytes { get; set; } = DeltaMemory.DefaultBudget;

    /// <summary>Most frames or patches one build codes at once (one build runs at a time; the budget may allow fewer).</summary>
    public int Parallelism { get; set; } = 1;

    /// <summary>
    /// After a rollout's deltas, also code the target's new chunks as chunk patches against the most common source
    /// version (<c>orch release chunk-patches</c>, docs/store-format.md "Chunk patches"), for devices whose tree matches
    /// that release only in part. Level 19, <see cref="Parallelism"/> workers; memory per worker about 0.1 GiB.
    /// </summary>
    public bool ChunkPatches { get; set; }

    /// <summary>Every problem with these settings, each naming the key and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxSources < 1) yield return $"Deltas:MaxSources is {MaxSources}; use 1 or more (default 3).";
        if (Coverage is <= 0 or > 1) yield return $"Deltas:Coverage is {Coverage}; use a fraction in (0, 1] (default 0.95).";
        if (Parallelism < 1) yield return $"Deltas:Parallelism is {Parallelism}; use 1 or more (default 1).";
        var floor = DeltaMemory.LevelFloor(1);
        if (Level is < 1 or > PatchCodec.MaxLevel)
            yield return $"Deltas:Level is {Level}; use a zstd level 1..{PatchCodec.MaxLevel}, or remove it to take the highest level that fits Deltas:MemoryBudgetBytes.";
        else if (MemoryBudgetBytes < floor)
            yield return $"Deltas:MemoryBudgetBytes is {MemoryBudgetBytes}; a delta build needs at least {floor} bytes (one zstd context at level 1 and the largest window, "
                + $"and one frame): set Deltas:MemoryBudgetBytes to {floor} or more (default {DeltaMemory.DefaultBudget}).";
        else if (Level is { } level && DeltaMemory.LevelFloor(level) is var needed && needed > MemoryBudgetBytes)
            yield return $"Deltas:Level {level} needs {needed} bytes (one zstd context at the largest window, and one frame), over Deltas:MemoryBudgetBytes {MemoryBudgetBytes}: "
                + $"raise Deltas:MemoryBudgetBytes to at least {needed}, set Deltas:Level to {DeltaMemory.HighestLevel(MemoryBudgetBytes)} or lower, "
                + "or remove Deltas:Level to take the highest level that fits.";
        if (KeysDirectory is { Length: 0 }) yield return "Deltas:KeysDirectory is empty; set the folder written by 'orch keys init', or remove the key to disable deltas.";
    }
}

/// <summary>What <see cref="DeltaPrecomputer"/> decided and did for one rollout (for logs and tests).</summary>
/// <param name="RolloutId">Rollout.</param>
/// <param name="Sources">Source versions chosen, most devices first, with their device counts.</param>
/// <param name="Built">Delta manifest paths built now.</param>
/// <param name="Existing">Delta manifest paths that were already built.</param>
/// <param name="Failed">Source versions whose build failed, with the reason.</param>
public sealed record DeltaPlanOutcome(string RolloutId, IReadOnlyList<(string Version, int Devices)> Sources,
    IReadOnlyList<string> Built, IReadOnlyList<string> Existing, IReadOnlyList<(string Version, string Reason)> Failed);

/// <summary>
/// When a rollout is created, finds the most common installed versions among its targeted devices (the device
/// registry read model) and builds deltas from them to the target, in the background and one build at a time, so a
/// rollout never waits for it: devices check in, get the delta path once it exists, and chunks until then. Builds
/// are idempotent (an existing delta is found, not rebuilt). Failures are logged and counted
/// (<c>orch_deltas_builds_total{result="failed"}</c>); the rollout proceeds on chunks.
/// </summary>
public sealed class DeltaPrecomputer(DeltaOptions options, NodeSettings settings, FileSystemStore store, IServiceProvider services, ILogger<DeltaPrecomputer> log)
    : BackgroundService
{
    private static readonly Meter Meter = new(GatewayMetrics.MeterName);
    private static readonly Counter<long> Builds = Meter.CreateCounter<long>("orch_deltas_builds", description: "Delta builds, by result (built, existing, failed, skipped)");
    private static readonly TimeSpan RegistryTimeout = TimeSpan.FromSeconds(10);
    private readonly Channel<RolloutSpec> _queue = Channel.CreateUnbounded<RolloutSpec>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Raised after each rollout's plan ran (tests and logs).</summary>
    public event Action<DeltaPlanOutcome>? Completed;

    /// <summary>Queues the rollout's delta plan; returns at once.</summary>
    public void Request(RolloutSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (options.KeysDirectory is null)
        {
            Builds.Add(1, new KeyValuePair<string, object?>("result", "skipped"));
            log.LogInformation("Rollout {Rollout}: no deltas precomputed (Deltas:KeysDirectory is not set); devices download chunks", spec.RolloutId);
            return;
        }
        if (settings.ChunkStore.Backend != "filesystem")
        {
            // Patch objects are written under the store root; a PostgreSQL chunk backend would not serve them.
            Builds.Add(1, new KeyValuePair<string, object?>("result", "skipped"));
            log.LogWarning("Rollout {Rollout}: no deltas precomputed: ChunkStore:Backend is {Backend}, deltas need the filesystem backend", spec.RolloutId, settings.ChunkStore.Backend);
            return;
        }
        _queue.Writer.TryWrite(spec);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var spec in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                var outcome = await PlanAndBuildAsync(spec, stoppingToken).ConfigureAwait(false);
                Completed?.Invoke(outcome);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
#pragma warning disable CA1031 // a failed plan must never stop the queue: the rollout proceeds on chunks
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Builds.Add(1, new KeyValuePair<string, object?>("result", "failed"));
                log.LogError(ex, "Rollout {Rollout}: delta planning failed; devices download chunks", spec.RolloutId);
                Completed?.Invoke(new DeltaPlanOutcome(spec.RolloutId, [], [], [], [("*", ex.Message)]));
            }
        }
    }

    private async Task<DeltaPlanOutcome> PlanAndBuildAsync(RolloutSpec spec, CancellationToken ct)
    {
        var target = spec.Target;
        var registry = services.GetRequiredService<IRequiredActor<DeviceRegistryActor>>();
        var actor = await registry.GetAsync(ct).ConfigureAwait(false);
        // Narrow by tag in the registry only when tags are the whole selector (explicit ids and groups may lack it).
        var tag = spec.Selector.DeviceIds.Count == 0 && spec.Selector.Groups.Count == 0 ? spec.Selector.Tags.FirstOrDefault() : null;
        // A truncated list would plan from a sample: RegistrySelection throws instead and planning fails (logged) as a whole.
        var list = await RegistrySelection.AllAsync(actor, new QueryDevices(null, null, tag, null, settings.Devices.RegistryQueryLimit), RegistryTimeout, ct)
            .ConfigureAwait(false);
        var counts = list.Devices
            .Where(d => d.Product == target.Product && spec.Selector.Matches(d) && d.InstalledVersionId > 0 && d.InstalledVersionId < target.VersionId)
            .GroupBy(d => d.InstalledVersionId)
            .Select(g => (VersionId: g.Key, Devices: g.Count()))
            .OrderByDescending(g => g.Devices).ThenByDescending(g => g.VersionId)
            .ToList();
        var index = ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath(target.Product))
            ?? throw new InvalidInputException($"product '{target.Product}' has no release index"));
        var total = counts.Sum(c => c.Devices);
        var sources = new List<(string Version, int Devices)>();
        var covered = 0;
        foreach (var (versionId, devices) in counts)
        {
            if (sources.Count >= options.MaxSources || (total > 0 && covered >= options.Coverage * total)) break;
            if (index.FindById(versionId) is not { } entry) continue; // unknown to this store: nothing to patch from
            sources.Add((entry.Version, devices));
            covered += devices;
        }
        log.LogInformation("Rollout {Rollout}: {Devices} targeted devices run older versions; deltas from {Sources} to {Target}",
            spec.RolloutId, total, string.Join(", ", sources.Select(s => $"{s.Version} ({s.Devices})")), target.Version);

        var built = new List<string>();
        var existing = new List<string>();
        var failed = new List<(string, string)>();
        var contentKey = KeyFiles.LoadContentKey(options.KeysDirectory!);
        using var signingKey = KeyFiles.LoadSigningKey(options.KeysDirectory!);
        var builder = new DeltaBuilder(store, contentKey, signingKey)
        {
            Level = options.Level, MemoryBudget = options.MemoryBudgetBytes, Parallelism = options.Parallelism,
        };
        foreach (var (version, _) in sources)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                // CPU-bound and synchronous: off the host's threads, one build at a time (this loop is the only reader).
                var result = await Task.Run(() => builder.Build(target.Product, version, target.Version, ct), ct).ConfigureAwait(false);
                (result.AlreadyBuilt ? existing : built).Add(result.ManifestPath);
                Builds.Add(1, new KeyValuePair<string, object?>("result", result.AlreadyBuilt ? "existing" : "built"));
                log.LogInformation("Rollout {Rollout}: delta {Path} {State}: {Patched} files patched, {PatchBytes} patch bytes instead of {ChunkBytes} chunk bytes, "
                    + "zstd level {Level}, {Parallelism} in flight, {MemoryBytes} bytes of memory planned, {Seconds:F1}s",
                    spec.RolloutId, result.ManifestPath, result.AlreadyBuilt ? "already built" : "built", result.FilesPatched, result.PatchBytes,
                    result.ChunkBytesReplaced, result.Delta.Level, result.Memory?.Parallelism ?? 0, result.Memory?.Bytes ?? 0, result.Elapsed.TotalSeconds);
                if (result.Auto is { } auto)
                    log.LogInformation("Rollout {Rollout}: delta {Path} kept the {Kept}: whole-release {ReleaseBytes} bytes fetched, per-file {FilesBytes} "
                        + "(at zstd level {ProbeLevel}: {ProbeBytes}); whole-release coded in {ReleaseSeconds:F1}s, per-file in {FilesSeconds:F1}s, probe {ProbeSeconds:F1}s",
                        spec.RolloutId, result.ManifestPath, result.Delta.Release is null ? "per-file patches" : "whole-release stream", auto.ReleaseBytes,
                        auto.FilesBytes?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "not coded (the probe showed it cannot win)",
                        auto.ProbeLevel, auto.ProbeBytes, auto.ReleaseElapsed.TotalSeconds, auto.FilesElapsed.TotalSeconds, auto.ProbeElapsed.TotalSeconds);
            }
            catch (Exception ex) when (ex is InvalidInputException or IntegrityException or StoreBusyException or IOException)
            {
                failed.Add((version, ex.Message));
                Builds.Add(1, new KeyValuePair<string, object?>("result", "failed"));
                log.LogWarning("Rollout {Rollout}: delta {From} -> {To} not built ({Reason}); those devices download chunks",
                    spec.RolloutId, version, target.Version, ex.Message);
            }
        }
        if (options.ChunkPatches && sources.Count > 0)
        {
            var baseVersion = sources[0].Version;
            try
            {
                var patcher = new ChunkPatchBuilder(store, contentKey, signingKey) { Parallelism = options.Parallelism };
                var r = await Task.Run(() => patcher.Build(target.Product, target.Version, baseVersion, ct), ct).ConfigureAwait(false);
                Builds.Add(1, new KeyValuePair<string, object?>("result", r.AlreadyBuilt ? "existing" : "built"));
                log.LogInformation("Rollout {Rollout}: chunk patches {Path} {State}: {Patched} of {Candidates} new chunks patched against {Base}, "
                    + "{PatchBytes} patch bytes instead of {ChunkBytes} chunk bytes, {Seconds:F1}s",
                    spec.RolloutId, r.IndexPath, r.AlreadyBuilt ? "already built" : "built", r.Patched, r.Candidates, baseVersion, r.PatchBytes,
                    r.ChunkBytesReplaced, r.Elapsed.TotalSeconds);
            }
            catch (Exception ex) when (ex is InvalidInputException or IntegrityException or StoreBusyException or IOException)
            {
                failed.Add(($"chunk patches against {baseVersion}", ex.Message));
                Builds.Add(1, new KeyValuePair<string, object?>("result", "failed"));
                log.LogWarning("Rollout {Rollout}: chunk patches of {To} against {Base} not built ({Reason}); devices download the chunks",
                    spec.RolloutId, target.Version, baseVersion, ex.Message);
            }
        }
        return new DeltaPlanOutcome(spec.RolloutId, sources, built, existing, failed);
    }
}
