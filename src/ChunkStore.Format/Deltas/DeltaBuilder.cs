using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>What <see cref="DeltaBuilder.Build"/> did.</summary>
/// <param name="ManifestPath">Store-relative path of the delta manifest.</param>
/// <param name="Delta">The delta manifest.</param>
/// <param name="AlreadyBuilt">A valid, signed delta manifest was already there; nothing was written.</param>
/// <param name="FilesPatched">Files served by a patch or the whole-release stream.</param>
/// <param name="FilesChunks">Changed files where a patch would not beat the file's missing chunks.</param>
/// <param name="PatchBytes">Stored bytes of all patch objects.</param>
/// <param name="ChunkBytesReplaced">Stored bytes of the missing chunks the patched files would otherwise need.</param>
/// <param name="ObjectsWritten">Patch objects written now (the others were already stored).</param>
/// <param name="Elapsed">Wall time.</param>
/// <param name="Memory">Level, patches in flight and memory of the coding that ran (the largest of the codings an auto build runs); null when nothing was coded.</param>
/// <param name="Auto">How an auto build chose between the whole-release stream and per-file patches; null for an explicit method, or when only one of them could be built.</param>
public sealed record DeltaBuildResult(string ManifestPath, DeltaManifest Delta, bool AlreadyBuilt, int FilesPatched, int FilesChunks,
    long PatchBytes, long ChunkBytesReplaced, int ObjectsWritten, TimeSpan Elapsed, DeltaMemoryPlan? Memory = null, DeltaAutoChoice? Auto = null);

/// <summary>
/// What an auto build measured to choose (<see cref="DeltaBuilder.Method"/>): every byte figure is what a device holding the
/// source fetches over that delta (its manifest, its objects, and the chunks of changed files it leaves to chunks).
/// </summary>
/// <param name="ReleaseBytes">The whole-release delta at the build's level.</param>
/// <param name="ProbeLevel">zstd level the per-file patches were first priced at (<see cref="DeltaBuilder.AutoProbeLevel"/>, or the build's level when that is not higher).</param>
/// <param name="ProbeBytes">The per-file delta at <paramref name="ProbeLevel"/>; null when no separate probe ran (the build's level is not above it).</param>
/// <param name="FilesBytes">The per-file delta at the build's level; null when it was not coded because the probe showed it cannot win.</param>
/// <param name="ProbeElapsed">Wall time of the probe.</param>
/// <param name="ReleaseElapsed">Wall time of the whole-release coding.</param>
/// <param name="FilesElapsed">Wall time of the per-file coding at the build's level (zero when skipped).</param>
public sealed record DeltaAutoChoice(long ReleaseBytes, int ProbeLevel, long? ProbeBytes, long? FilesBytes,
    TimeSpan ProbeElapsed, TimeSpan ReleaseElapsed, TimeSpan FilesElapsed);

/// <summary>How <see cref="DeltaBuilder"/> codes the changed files.</summary>
public enum DeltaBuildMethod
{
    /// <summary>
    /// The whole-release stream, unless per-file patches make a device fetch fewer bytes (manifest included); per-file
    /// patches are coded at the build's level only when a fast probe says they can win (<see cref="DeltaBuilder.AutoProbeLevel"/>).
    /// </summary>
    Auto,

    /// <summary>One whole-release stream (schema 2, <see cref="ReleaseStream"/>).</summary>
    Release,

    /// <summary>Per-file patches (schema 1).</summary>
    Files,
}

/// <summary>
/// Builds the delta from one published release to a later one (whole-release stream or per-file patches,
/// <see cref="Method"/>); per file: for every target file whose content is not
/// already somewhere in the source release, a zstd patch-from against the source file of the same path (or, for a
/// renamed file, the source file of the same name), encrypted and content-addressed like a chunk and stored under
/// <c>chunks/</c>; then the signed delta manifest. A file keeps <see cref="DeltaMethod.Chunks"/> when its patch
/// is not smaller than the chunks a device holding the source release would fetch for it. Patches are computed
/// without the store's writer lock and written under it (objects, flush, manifest, signature), so gc never sweeps
/// objects before their manifest exists; bad input throws <see cref="InvalidInputException"/> before the first
/// write. Idempotent: an existing valid delta is returned.
/// </summary>
public sealed class DeltaBuilder
{
    private readonly FileSystemStore _store;
    private readonly Packs.ChunkLocator _chunks;
    private readonly ContentKey _contentKey;
    private readonly ReleaseSigningKey _signingKey;
    private readonly TimeProvider _time;

    /// <summary>Creates a builder for <paramref name="store"/> with the product's keys.</summary>
    public DeltaBuilder(FileSystemStore store, ContentKey contentKey, ReleaseSigningKey signingKey, TimeProvider? time = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _chunks = new Packs.ChunkLocator(store);
        _contentKey = contentKey ?? throw new ArgumentNullException(nameof(contentKey));
        _signingKey = signingKey ?? throw new ArgumentNullException(nameof(signingKey));
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// zstd level of the patches (1..22); null (the default) takes the highest level whose build fits
    /// <see cref="MemoryBudget"/>. A set level whose build does not fit is refused (<see cref="InvalidInputException"/>).
    /// </summary>
    public int? Level { get; init; }

    /// <summary>
    /// Bytes the build may hold (<see cref="DeltaMemory"/>): the coded bytes plus a zstd context and output per patch or
    /// frame in flight. It decides the level when <see cref="Level"/> is null and lowers <see cref="Parallelism"/> to what fits.
    /// </summary>
    public long MemoryBudget { get; init; } = DeltaMemory.DefaultBudget;

    /// <summary>Most patches or frames coded at once (each holds a zstd context; <see cref="MemoryBudget"/> may allow fewer).</summary>
    public int Parallelism { get; init; } = Math.Min(2, Environment.ProcessorCount);

    /// <summary>Whole-release stream, per-file patches, or whichever makes a device fetch fewer bytes (the default).</summary>
    public DeltaBuildMethod Method { get; init; } = DeltaBuildMethod.Auto;

    /// <summary>
    /// zstd level at which an auto build first prices the per-file delta (patches coded, then dropped). A fast level:
    /// the probe costs a few percent of a high-level whole-release build, while coding every changed file at the
    /// build's level as well would cost about as much as the whole-release build again, or more.
    /// </summary>
    public const int AutoProbeLevel = 1;

    /// <summary>
    /// An auto build codes per-file patches at its own level only when the whole-release delta is not below this
    /// fraction of the per-file delta priced at <see cref="AutoProbeLevel"/>. The threshold assumes a higher level
    /// shrinks per-file patches to no less than this fraction of the probe's; and the whole-release stream codes every
    /// changed file against a superset of the one file a per-file patch sees (the whole source release and the earlier
    /// changed files). So below it the per-file delta cannot plausibly win, and its slow build is skipped.
    /// </summary>
    public const double AutoProbeRatio = 0.5;

    /// <summary><see cref="AutoProbeRatio"/> of this builder (tests set 0 to make auto code both methods at its level).</summary>
    internal double ProbeRatio { get; init; } = AutoProbeRatio;

    /// <summary>
    /// Whether the whole-release stream transforms executables' branches (<see cref="BranchFilter"/>, schema 3) so calls
    /// into moved code still match the source; off writes schema 2, which agents before schema 3 read.
    /// </summary>
    public bool BranchFilters { get; init; } = true;

    /// <summary>
    /// Whether each whole-release frame may also copy from the stream's earlier frames (schema 4,
    /// <see cref="ReleaseStream.Chained"/>); off writes independent frames (schema 3, or 2 without transforms).
    /// </summary>
    public bool ChainFrames { get; init; } = true;

    /// <summary>
    /// Whether a chained whole-release stream is coded as one zstd frame whose compressed bytes are split into objects
    /// (schema 5, <see cref="ReleaseStream.OneFrame"/>): the reference is indexed once instead of once per frame, and
    /// the build runs one coding task (<see cref="Parallelism"/> does not apply). Off writes schema 4 chained frames.
    /// </summary>
    public bool OneFrame { get; init; } = true;

    /// <summary>Plaintext bytes per object of a one-frame stream (at most the store's object limit; tests use smaller).</summary>
    internal int ObjectContent { get; init; } = ChunkingOptions.MaxChunkLimit;

    /// <summary>Target bytes per whole-release frame (<see cref="ReleaseStream.MinFrameContent"/>..<see cref="ReleaseStream.MaxFrameContent"/>).</summary>
    public int FrameContent { get; init; } = ReleaseStream.MaxFrameContent;

    /// <summary>Builds (or finds) the delta <paramref name="fromVersion"/> → <paramref name="toVersion"/> of <paramref name="product"/>.</summary>
    public DeltaBuildResult Build(string product, string fromVersion, string toVersion, CancellationToken cancellationToken = default)
    {
        var stopwatch = Stopwatch.StartNew();
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(fromVersion);
        StoreNames.RequireVersion(toVersion);
        if (Level is < 1 or > PatchCodec.MaxLevel)
            throw new InvalidInputException($"zstd level {Level} is invalid: use 1..{PatchCodec.MaxLevel}, or none for the highest level that fits the memory budget.");
        if (MemoryBudget <= 0) throw new InvalidInputException($"Memory budget {MemoryBudget} is invalid: use a positive number of bytes (default {DeltaMemory.DefaultBudget}).");
        var path = StoreLayout.DeltaManifestPath(product, fromVersion, toVersion);

        var indexBytes = _store.ReadFile(StoreLayout.IndexPath(product))
            ?? throw new InvalidInputException($"Product '{product}' has no releases in store '{_store.Root}': publish it first, or check --product.");
        var index = ReleaseIndex.Parse(indexBytes);
        var fromEntry = index.FindByVersion(fromVersion)
            ?? throw new InvalidInputException($"Version '{fromVersion}' of '{product}' is not published (listed: {string.Join(", ", index.Versions.Select(v => v.Version))}): check --from.");
        var toEntry = index.FindByVersion(toVersion)
            ?? throw new InvalidInputException($"Version '{toVersion}' of '{product}' is not published (listed: {string.Join(", ", index.Versions.Select(v => v.Version))}): check --to.");
        if (fromEntry.VersionId >= toEntry.VersionId)
            throw new InvalidInputException($"--from {fromVersion} (version ID {fromEntry.VersionId}) is not older than --to {toVersion} (version ID {toEntry.VersionId}): a delta goes from an older release to a newer one.");

        var (fromBytes, from) = ReadRelease(fromEntry);
        var (toBytes, to) = ReadRelease(toEntry);
        var fromEnd = new DeltaEndpoint(from.Version, from.VersionId, Sha256Hex(fromBytes), from.InventoryDigest);
        var toEnd = new DeltaEndpoint(to.Version, to.VersionId, Sha256Hex(toBytes), to.InventoryDigest);

        if (FrameContent is < ReleaseStream.MinFrameContent or > ReleaseStream.MaxFrameContent)
            throw new InvalidInputException($"Frame content {FrameContent} is invalid: use {ReleaseStream.MinFrameContent}..{ReleaseStream.MaxFrameContent} bytes.");

        var sourceHashes = from.Files.Select(f => f.Sha256).ToHashSet(StringComparer.Ordinal);
        var sourceByPath = from.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var sourceByName = from.Files.GroupBy(f => FileName(f.Path), StringComparer.Ordinal)
            .Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.Single(), StringComparer.Ordinal);
        var sourceChunks = from.DistinctChunks();

        var work = new List<(ManifestFile Target, ManifestFile Source)>();
        foreach (var target in to.Files)
        {
            // A file whose content the source release already holds (unchanged, or renamed unchanged) is copied locally.
            if (sourceHashes.Contains(target.Sha256)) continue;
            var source = sourceByPath.GetValueOrDefault(target.Path) ?? sourceByName.GetValueOrDefault(FileName(target.Path));
            if (source is null) continue; // new file with nothing to patch from: chunks, as without a delta
            work.Add((target, source));
        }

        // Level and parallelism come from the memory budget, decided from the manifests before any content is read.
        var shape = Method == DeltaBuildMethod.Files ? null : Shape(from, to, sourceHashes);
        DeltaMemoryPlan? PlanRelease(ReleaseShape? s) => s is null ? null
            : DeltaMemory.Plan(MemoryBudget, Level, s.WindowLog, s.SourceLength + s.StreamLength, s.TaskInput(FrameContent), s.OneFrame ? 1 : Parallelism);
        var releasePlan = PlanRelease(shape);
        // One frame's output is as large as the stream; a budget that holds only frame-sized tasks gets chained frames.
        if (releasePlan is null && shape is { OneFrame: true })
        {
            shape = shape with { OneFrame = false, WindowLog = PatchCodec.WindowLogFor(shape.SourceLength, Math.Max(shape.StreamLength, FrameContent)) };
            releasePlan = PlanRelease(shape);
        }
        if (Method == DeltaBuildMethod.Release && shape is not null && releasePlan is null)
            throw OverBudget(product, fromVersion, toVersion, "whole-release", shape.SourceLength + shape.StreamLength
                + DeltaMemory.TaskBytes(Level ?? 1, shape.WindowLog, shape.TaskInput(FrameContent)));
        var level = Level ?? releasePlan?.Level;
        var patchable = work.Where(w => w.Source.Size + w.Target.Size <= PatchCodec.MaxPatchInput).ToList();
        DeltaMemoryPlan? filesPlan = null;
        if (Method != DeltaBuildMethod.Release && patchable.Count > 0)
        {
            filesPlan = FilesMemory(patchable, level);
            level ??= filesPlan?.Level;
            if (filesPlan is null && (Method == DeltaBuildMethod.Files || releasePlan is null))
                throw OverBudget(product, fromVersion, toVersion, "per-file", DeltaMemory.TaskBytes(level ?? 1,
                    patchable.Max(w => PatchCodec.WindowLogFor(w.Source.Size, w.Target.Size)), patchable.Max(w => w.Source.Size + w.Target.Size)));
        }
        if (releasePlan is null && shape is not null && Method == DeltaBuildMethod.Auto && filesPlan is null)
            throw OverBudget(product, fromVersion, toVersion, "whole-release", shape.SourceLength + shape.StreamLength
                + DeltaMemory.TaskBytes(Level ?? 1, shape.WindowLog, shape.TaskInput(FrameContent)));
        // Nothing to code: the level is only recorded.
        var chosenLevel = level ?? DeltaMemory.HighestLevel(MemoryBudget) ?? 1;
        if (TryExisting(path, fromEnd, toEnd, chosenLevel) is { } existing)
        {
            // A store whose deltas predate compact manifests gets the target manifest's patch when the delta is asked for again.
            using (_store.AcquireWriterLock())
                if (ReleaseIndex.Parse(_store.ReadFile(StoreLayout.IndexPath(product)) ?? []).FindByVersion(toVersion) is not null)
                    CompactManifest.WritePatchIfAbsent(_store, toEntry.ManifestPath, toBytes, fromEntry.VersionId, fromBytes);
            return Summarize(path, existing, alreadyBuilt: true, 0, 0, stopwatch.Elapsed, null);
        }

        // The slow part (patching at a high level) runs without the writer lock, so publishes are not blocked for
        // minutes; the encrypted objects wait in memory (patches are small next to the files they replace).
        var createdUtc = TruncateToSeconds(_time.GetUtcNow());
        var emptyDelta = new DeltaManifest(product, fromEnd, toEnd, createdUtc, chosenLevel, []);
        var perFile = Method != DeltaBuildMethod.Release && (filesPlan is not null || patchable.Count == 0);
        var releaseFits = Method != DeltaBuildMethod.Files && shape is not null && releasePlan is not null;
        var clock = Stopwatch.StartNew();

        // Auto prices the per-file delta at a fast level first, so the slow per-file build runs only where it can win.
        FilesBuild? probe = null;
        var probeLevel = Math.Min(AutoProbeLevel, chosenLevel);
        DeltaMemoryPlan? probePlan = null;
        if (Method == DeltaBuildMethod.Auto && perFile && releaseFits && probeLevel < chosenLevel)
        {
            probePlan = FilesMemory(patchable, probeLevel);
            if (probePlan is not null || patchable.Count == 0)
                probe = BuildFiles(emptyDelta, work, to, sourceHashes, sourceChunks, probeLevel, probePlan?.Parallelism ?? 1, keepObjects: false, cancellationToken);
        }
        var probeElapsed = clock.Elapsed;

        clock.Restart();
        var release = releaseFits ? BuildRelease(from, to, shape!, releasePlan!, cancellationToken) : null;
        (DeltaManifest Delta, byte[] Bytes, IReadOnlyList<EncodedChunk> Objects, long Cost)? releaseDelta = null;
        if (release is { } built)
        {
            var d = emptyDelta with { Files = built.Release.Files, Release = built.Release.Stream };
            var b = DeltaManifestSerializer.Serialize(d);
            releaseDelta = (d, b, built.Frames, b.Length + d.PatchBytes);
        }
        else if (Method == DeltaBuildMethod.Release)
            throw new InvalidInputException($"{product} {fromVersion} -> {toVersion} has no whole-release delta: {(to.Files.All(f => sourceHashes.Contains(f.Sha256)) ? "no file changed" : "source plus one frame exceeds the " + PatchCodec.MaxPatchInput + "-byte window")}; use --method auto or files.");
        var releaseElapsed = clock.Elapsed;

        clock.Restart();
        // Per file at the build's level: asked for, the only delta there is, or not ruled out by the probe.
        var filesNeeded = perFile && (Method == DeltaBuildMethod.Files || releaseDelta is null || probe is null
            || releaseDelta.Value.Cost >= ProbeRatio * probe.Cost);
        var files = filesNeeded ? BuildFiles(emptyDelta, work, to, sourceHashes, sourceChunks, chosenLevel, filesPlan?.Parallelism ?? 1, keepObjects: true, cancellationToken) : null;
        var filesElapsed = filesNeeded ? clock.Elapsed : TimeSpan.Zero;

        // Keeps whichever a device holding the source fetches less of (the release stream when auto had no per-file build).
        DeltaManifest delta;
        byte[] bytes;
        IReadOnlyList<EncodedChunk> objects;
        if (releaseDelta is { } r && (files is null || r.Cost < files.Cost))
            (delta, bytes, objects) = (r.Delta, r.Bytes, r.Objects);
        else if (files is not null)
            (delta, bytes, objects) = (files.Delta, files.Bytes, files.Objects);
        else
            (delta, bytes, objects) = (emptyDelta, DeltaManifestSerializer.Serialize(emptyDelta), []);
        var auto = Method == DeltaBuildMethod.Auto && releaseDelta is { } rd && (files is not null || probe is not null)
            ? new DeltaAutoChoice(rd.Cost, probe is null ? chosenLevel : probeLevel, probe?.Cost, files?.Cost, probeElapsed, releaseElapsed, filesElapsed)
            : null;

        // Objects, flush, manifest, signature, all under the writer lock, so gc never sweeps objects whose manifest
        // is not written yet; the releases are re-checked because a gc may have dropped one meanwhile.
        using var writerLock = _store.AcquireWriterLock();
        var current = ReleaseIndex.Parse(_store.ReadFile(StoreLayout.IndexPath(product)) ?? []);
        if (current.FindByVersion(fromVersion) is null || current.FindByVersion(toVersion) is null)
            throw new InvalidInputException($"Version '{fromVersion}' or '{toVersion}' of '{product}' was removed while the delta was built (gc --keep-last?); nothing written.");
        var written = 0;
        foreach (var encoded in objects)
            if (_store.PutChunkIfAbsent(encoded.Id, encoded.Stored)) written++;
        _store.Flush();
        _store.WriteFile(path, bytes);
        _store.WriteFile(StoreLayout.SignaturePathFor(path), ManifestSigner.Sign(bytes, _signingKey));
        // A device making this upgrade also fetches the target manifest: coded against the source's when that is smaller.
        CompactManifest.WritePatchIfAbsent(_store, toEntry.ManifestPath, toBytes, fromEntry.VersionId, fromBytes);
        var replaced = delta.Release is null
            ? files?.ChunkCostPatched ?? 0
            : ChunkBytes(to.Files.Where(f => !sourceHashes.Contains(f.Sha256)), sourceChunks);
        var memory = new[] { releaseFits ? releasePlan : null, filesNeeded ? filesPlan : null, probe is null ? null : probePlan }
            .Where(p => p is not null).MaxBy(p => p!.Bytes);
        return Summarize(path, delta, alreadyBuilt: false, replaced, written, stopwatch.Elapsed, memory, auto);
    }

    /// <summary>The per-file delta at one level: its manifest, objects, and what a device holding the source fetches over it.</summary>
    private sealed record FilesBuild(DeltaManifest Delta, byte[] Bytes, IReadOnlyList<EncodedChunk> Objects, long Cost, long ChunkCostPatched);

    /// <summary>Memory of per-file patches at <paramref name="level"/>: a task holds one source and target, counted with its output by TaskBytes' input.</summary>
    private DeltaMemoryPlan? FilesMemory(IReadOnlyList<(ManifestFile Target, ManifestFile Source)> patchable, int? level)
    {
        if (patchable.Count == 0) return null;
        var largest = patchable.Max(w => w.Source.Size + w.Target.Size);
        var window = patchable.Max(w => PatchCodec.WindowLogFor(w.Source.Size, w.Target.Size));
        return DeltaMemory.Plan(MemoryBudget, level, window, 0, largest, Parallelism);
    }

    /// <summary>
    /// Per-file patches of <paramref name="work"/> at <paramref name="level"/>; its cost is the manifest plus its objects plus the
    /// chunks of every changed file it leaves to chunks (those without a source, and those whose patch is not smaller).
    /// Without <paramref name="keepObjects"/> (a probe that only prices the delta) the encrypted objects are dropped.
    /// </summary>
    private FilesBuild BuildFiles(DeltaManifest empty, IReadOnlyList<(ManifestFile Target, ManifestFile Source)> work, Manifest to,
        IReadOnlySet<string> sourceHashes, IReadOnlySet<ChunkId> sourceChunks, int level, int parallelism, bool keepObjects, CancellationToken cancellationToken)
    {
        var results = new ConcurrentDictionary<string, (DeltaFile File, long ChunkCost, IReadOnlyList<EncodedChunk> Objects)>(StringComparer.Ordinal);
        Parallel.ForEach(work, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken },
            item =>
            {
                var built = BuildFile(item.Target, item.Source, sourceChunks, level);
                results[item.Target.Path] = keepObjects ? built : built with { Objects = [] };
            });
        var delta = empty with { Files = results.Values.Select(r => r.File).OrderBy(f => f.Path, StringComparer.Ordinal).ToList() };
        var bytes = DeltaManifestSerializer.Serialize(delta);
        var leftToChunks = to.Files.Where(f => !sourceHashes.Contains(f.Sha256)
            && !(results.TryGetValue(f.Path, out var r) && r.File.Method == DeltaMethod.Patch));
        return new FilesBuild(delta, bytes, results.Values.SelectMany(r => r.Objects).ToList(),
            bytes.Length + delta.PatchBytes + ChunkBytes(leftToChunks, sourceChunks),
            results.Values.Where(r => r.File.Method == DeltaMethod.Patch).Sum(r => r.ChunkCost));
    }

    private InvalidInputException OverBudget(string product, string from, string to, string method, long needed) =>
        new($"The {method} delta {product} {from} -> {to} needs at least {needed} bytes at zstd level {Level?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "1"}, "
            + $"over the {MemoryBudget}-byte memory budget: raise the budget (Deltas:MemoryBudgetBytes, orch delta build --memory-budget)"
            + (Level is null ? "." : ", or lower or unset the level (Deltas:Level, --level) so the highest level that fits is chosen."));

    /// <summary>What a whole-release build codes: source and stream lengths, chaining and the window.</summary>
    private sealed record ReleaseShape(long SourceLength, long StreamLength, bool Chained, int WindowLog, bool OneFrame)
    {
        /// <summary>Bytes one coding task takes in: the whole stream for one frame, else one frame's piece.</summary>
        public long TaskInput(int frameContent) => OneFrame ? StreamLength : frameContent;
    }

    /// <summary>The whole-release build's shape from the manifests; null when nothing changed or the source is too large for one window.</summary>
    private ReleaseShape? Shape(Manifest from, Manifest to, IReadOnlySet<string> sourceHashes)
    {
        var streamLength = to.Files.Where(f => !sourceHashes.Contains(f.Sha256)).Sum(f => f.Size);
        var sourceLength = from.Files.Sum(f => f.Size);
        if (streamLength == 0 || sourceLength + FrameContent > PatchCodec.MaxPatchInput) return null;
        // Chaining needs the reference and the whole stream in one window; a release too large for that keeps independent frames.
        var chainedWindow = Math.Max(streamLength, FrameContent);
        var chained = ChainFrames && sourceLength + chainedWindow <= PatchCodec.MaxPatchInput;
        if (chained && OneFrame) return new ReleaseShape(sourceLength, streamLength, true, PatchCodec.WindowLogFor(sourceLength, streamLength), true);
        return new ReleaseShape(sourceLength, streamLength, chained, PatchCodec.WindowLogFor(sourceLength, chained ? chainedWindow : FrameContent), false);
    }

    /// <summary>
    /// The whole-release stream: every target file whose content the source lacks, in path order, coded frame by frame
    /// against all source files concatenated in path order, with <paramref name="plan"/>'s level and frames in flight.
    /// </summary>
    private ((IReadOnlyList<DeltaFile> Files, ReleaseStream Stream) Release, IReadOnlyList<EncodedChunk> Frames)? BuildRelease(Manifest from, Manifest to,
        ReleaseShape shape, DeltaMemoryPlan plan, CancellationToken cancellationToken)
    {
        var sourceHashes = from.Files.Select(f => f.Sha256).ToHashSet(StringComparer.Ordinal);
        var streamFiles = to.Files.Where(f => !sourceHashes.Contains(f.Sha256)).OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
        var sources = from.Files.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => new ReleaseSource(f.Path, f.Sha256, f.Size)).ToList();
        var (sourceLength, streamLength, chained, windowLog, oneFrame) = shape;

        // Reference and stream side by side in one buffer: a chained frame's prefix is the bytes before its piece.
        var all = new byte[sourceLength + streamLength];
        var sourceFilters = Concatenate(from.Files.OrderBy(f => f.Path, StringComparer.Ordinal).ToList(), all, 0, chained);
        var streamFilters = Concatenate(streamFiles, all, sourceLength, chained);
        sources = sources.Select((s, i) => s with { Filter = sourceFilters[i] }).ToList();
        var files = streamFiles.Select((f, i) => new DeltaFile(f.Path, "", "", f.Sha256, f.Size, DeltaMethod.Release, 0, [], streamFilters[i])).ToList();
        if (oneFrame)
        {
            // One zstd run indexes the reference once and matches the whole stream against it and against itself.
            var frame = PatchCodec.CreateFrame(all.AsSpan(0, (int)sourceLength), all.AsSpan((int)sourceLength), plan.Level, windowLog);
            var objects = new List<EncodedChunk>((frame.Length + ObjectContent - 1) / ObjectContent);
            for (var offset = 0; offset < frame.Length; offset += ObjectContent)
                objects.Add(ChunkCodec.EncodeUncompressed(frame.AsSpan(offset, Math.Min(ObjectContent, frame.Length - offset)), _contentKey));
            return ((files, new ReleaseStream(windowLog, 0, sources, Parts(objects), Chained: true, OneFrame: true)), objects);
        }
        var frameCount = (int)((streamLength + FrameContent - 1) / FrameContent);
        var frames = new EncodedChunk[frameCount];
        Parallel.For(0, frameCount, new ParallelOptions { MaxDegreeOfParallelism = plan.Parallelism, CancellationToken = cancellationToken }, i =>
        {
            var start = sourceLength + (long)i * FrameContent;
            var piece = all.AsSpan((int)start, (int)Math.Min(FrameContent, sourceLength + streamLength - start));
            var prefix = all.AsSpan(0, (int)(chained ? start : sourceLength));
            frames[i] = ChunkCodec.EncodeUncompressed(PatchCodec.CreateFrame(prefix, piece, plan.Level, windowLog), _contentKey);
        });
        return ((files, new ReleaseStream(windowLog, FrameContent, sources, Parts(frames), chained)), frames);
    }

    private static List<DeltaPart> Parts(IEnumerable<EncodedChunk> objects) =>
        objects.Select(e => new DeltaPart(e.Id, e.Stored.Length - ChunkCodec.HeaderLength - ChunkCodec.TagLength, e.Stored.Length)).ToList();

    /// <summary>
    /// Writes the files' contents one after the other into <paramref name="all"/> from <paramref name="at"/>, each
    /// transformed by the branch filter its own header calls for (none when <see cref="BranchFilters"/> is off; x86-64
    /// code takes the x86 transform unless <paramref name="x64"/>, as schema 3 has no x86-64 filter).
    /// </summary>
    private BranchFilterKind[] Concatenate(IReadOnlyList<ManifestFile> files, byte[] all, long at, bool x64)
    {
        var filters = new BranchFilterKind[files.Count];
        for (var i = 0; i < files.Count; i++)
        {
            var content = all.AsSpan((int)at, (int)files[i].Size);
            ReadContent(files[i]).CopyTo(content);
            filters[i] = BranchFilters ? BranchFilter.Detect(content) : BranchFilterKind.None;
            if (filters[i] == BranchFilterKind.X64 && !x64) filters[i] = BranchFilterKind.X86;
            BranchFilter.Transform(filters[i], encode: true, content);
            at += files[i].Size;
        }
        return filters;
    }

    /// <summary>Stored bytes of the distinct chunks of <paramref name="files"/> that <paramref name="held"/> lacks.</summary>
    private long ChunkBytes(IEnumerable<ManifestFile> files, IReadOnlySet<ChunkId> held)
    {
        long total = 0;
        var seen = new HashSet<ChunkId>();
        foreach (var f in files)
            foreach (var c in f.Chunks)
                if (!held.Contains(c.Id) && seen.Add(c.Id)) total += _chunks.StoredLength(c.Id) ?? throw MissingChunk(c.Id, f.Path);
        return total;
    }

    private (DeltaFile File, long ChunkCost, IReadOnlyList<EncodedChunk> Objects) BuildFile(ManifestFile target, ManifestFile source, IReadOnlySet<ChunkId> sourceChunks,
        int level)
    {
        // What a device holding the source release fetches for this file without a delta: chunks it lacks, once each.
        long chunkCost = 0;
        foreach (var id in target.Chunks.Select(c => c.Id).Distinct())
            if (!sourceChunks.Contains(id)) chunkCost += _chunks.StoredLength(id) ?? throw MissingChunk(id, target.Path);

        var chunksOnly = new DeltaFile(target.Path, source.Path, source.Sha256, target.Sha256, target.Size, DeltaMethod.Chunks, 0, []);
        if (chunkCost == 0 || source.Size + target.Size > PatchCodec.MaxPatchInput) return (chunksOnly, chunkCost, []);

        var oldContent = ReadContent(source);
        var newContent = ReadContent(target);
        var patch = PatchCodec.Create(oldContent, newContent, level);
        var partCount = (patch.Length + ChunkingOptions.MaxChunkLimit - 1) / ChunkingOptions.MaxChunkLimit;
        var patchCost = patch.Length + (long)partCount * (ChunkCodec.HeaderLength + ChunkCodec.TagLength);
        if (patchCost >= chunkCost) return (chunksOnly, chunkCost, []);

        var parts = new List<DeltaPart>(partCount);
        var objects = new List<EncodedChunk>(partCount);
        for (var offset = 0; offset < patch.Length; offset += ChunkingOptions.MaxChunkLimit)
        {
            var slice = patch.AsSpan(offset, Math.Min(ChunkingOptions.MaxChunkLimit, patch.Length - offset));
            var encoded = ChunkCodec.EncodeUncompressed(slice, _contentKey);
            objects.Add(encoded);
            parts.Add(new DeltaPart(encoded.Id, slice.Length, encoded.Stored.Length));
        }
        return (new DeltaFile(target.Path, source.Path, source.Sha256, target.Sha256, target.Size, DeltaMethod.Patch,
            PatchCodec.WindowLogFor(oldContent.Length, newContent.Length), parts), chunkCost, objects);
    }

    /// <summary>Decodes a release file from its chunks and checks its hash (the store is trusted, but not blindly).</summary>
    private byte[] ReadContent(ManifestFile file)
    {
        var content = new byte[file.Size];
        foreach (var piece in file.Pieces())
        {
            var c = piece.Chunk;
            var stored = _chunks.Read(c.Id) ?? throw MissingChunk(c.Id, file.Path);
            ChunkCodec.Decode(stored, _contentKey, c.Length, c.Id).AsSpan(piece.ChunkOffset, piece.Length).CopyTo(content.AsSpan((int)piece.FileOffset));
        }
        if (Sha256Hex(content) != file.Sha256)
            throw new IntegrityException($"File '{file.Path}' decodes to content whose SHA-256 is not the manifest's: run 'orch store verify'.");
        return content;
    }

    private static InvalidInputException MissingChunk(ChunkId id, string path) =>
        new($"Chunk {id} of '{path}' is missing from the store: run 'orch store verify' and restore it before building deltas.");

    private (byte[] Bytes, Manifest Manifest) ReadRelease(ReleaseIndexEntry entry)
    {
        var bytes = _store.ReadFile(entry.ManifestPath)
            ?? throw new InvalidInputException($"Manifest {entry.ManifestPath} is listed but missing: run 'orch store verify'.");
        var signature = _store.ReadFile(StoreLayout.SignaturePathFor(entry.ManifestPath))
            ?? throw new InvalidInputException($"Signature of {entry.ManifestPath} is missing: run 'orch store verify'.");
        Manifest manifest;
        try
        {
            manifest = ManifestSigner.VerifyAndParse(bytes, signature, _signingKey.PublicKey);
        }
        catch (IntegrityException ex)
        {
            throw new InvalidInputException($"Manifest {entry.ManifestPath} does not verify with the signing key in --keys ({ex.Message}): a delta is only built between releases these keys signed.", ex);
        }
        if (manifest.VersionId != entry.VersionId || manifest.Version != entry.Version)
            throw new InvalidInputException($"Manifest {entry.ManifestPath} says {manifest.Version} id {manifest.VersionId}, the index says {entry.Version} id {entry.VersionId}: run 'orch store verify'.");
        return (bytes, manifest);
    }

    /// <summary>The delta already in the store when it is signed by our key, parses, names exactly these releases and has all its objects.</summary>
    private DeltaManifest? TryExisting(string path, DeltaEndpoint from, DeltaEndpoint to, int level)
    {
        var bytes = _store.ReadFile(path);
        var signature = _store.ReadFile(StoreLayout.SignaturePathFor(path));
        if (bytes is null || signature is null) return null;
        try
        {
            var delta = DeltaManifestSerializer.VerifyAndParse(bytes, signature, _signingKey.PublicKey);
            if (delta.From != from || delta.To != to || delta.Level != level) return null;
            if ((Method == DeltaBuildMethod.Release && delta.Release is null) || (Method == DeltaBuildMethod.Files && delta.Release is not null)) return null;
            // Transforms off asks for a delta that agents reading only schema 2 can use.
            if (!BranchFilters && delta.Release is { } r && (r.Sources.Any(f => f.Filter != BranchFilterKind.None) || delta.Files.Any(f => f.Filter != BranchFilterKind.None))) return null;
            // Likewise chaining off asks for independent frames (agents reading up to schema 3).
            if (!ChainFrames && delta.Release is { Chained: true }) return null;
            // And one frame off asks for schema 4 frames (agents reading up to schema 4).
            if (!OneFrame && delta.Release is { OneFrame: true }) return null;
            return delta.DistinctObjects().All(_store.ChunkExists) ? delta : null;
        }
        catch (Exception ex) when (ex is InvalidInputException or IntegrityException)
        {
            return null; // damaged or foreign: rebuilt and overwritten
        }
    }

    private static DeltaBuildResult Summarize(string path, DeltaManifest delta, bool alreadyBuilt, long chunkBytesReplaced, int written, TimeSpan elapsed,
        DeltaMemoryPlan? memory, DeltaAutoChoice? auto = null) =>
        new(path, delta, alreadyBuilt, delta.Files.Count(f => f.Method is DeltaMethod.Patch or DeltaMethod.Release), delta.Files.Count(f => f.Method == DeltaMethod.Chunks),
            delta.PatchBytes, chunkBytesReplaced, written, elapsed, memory, auto);

    private static string FileName(string path) => path[(path.LastIndexOf('/') + 1)..];

    private static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static DateTimeOffset TruncateToSeconds(DateTimeOffset t) =>
        new(t.UtcTicks - t.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
}
