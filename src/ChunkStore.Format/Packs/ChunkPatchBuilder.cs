using System.Diagnostics;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>What <see cref="ChunkPatchBuilder.Build"/> did.</summary>
/// <param name="IndexPath">Store path of the signed chunk patch index.</param>
/// <param name="Version">The release whose chunks were patched.</param>
/// <param name="BaseVersion">The release the patches are coded against.</param>
/// <param name="AlreadyBuilt">True when a valid index against the same base existed and nothing was written.</param>
/// <param name="Candidates">New chunks of changed files that have a same-path file in the base.</param>
/// <param name="Patched">Chunks given a patch (smaller than the chunk object).</param>
/// <param name="PatchBytes">Stored bytes of the patch objects.</param>
/// <param name="ChunkBytesReplaced">Stored bytes of the chunk objects those patches replace for a device holding the base.</param>
/// <param name="Packs">Pack objects written.</param>
/// <param name="Elapsed">Wall-clock time.</param>
/// <param name="CpuTime">Process CPU time (user + system) spent by the build.</param>
public sealed record ChunkPatchBuildResult(string IndexPath, string Version, string BaseVersion, bool AlreadyBuilt, int Candidates, int Patched,
    long PatchBytes, long ChunkBytesReplaced, int Packs, TimeSpan Elapsed, TimeSpan CpuTime);

/// <summary>
/// Codes each new chunk of a release's changed files as a zstd patch against the previous release's bytes of the same
/// file around the chunk's proportional offset (docs/store-format.md, "Chunk patches"), once per release, and stores
/// the encrypted patches in pack objects with a signed index next to the manifest. Runs off the publish path (its CPU
/// is the level-19 patches), under the store's writer lock; writes nothing until every input was checked, and the
/// index last, so an interrupted build leaves at most unreferenced packs that gc removes.
/// <para>
/// Memory: per worker one base region (at most 2 x <see cref="Window"/> + the chunk), the chunk, its patch and a zstd
/// level-19 context (~0.1 GiB at most, typically far less for an 8 MiB window); results of one batch
/// (<see cref="BatchSize"/> patches); the pack being filled (16 MiB). Independent of the release's size.
/// </para>
/// </summary>
public sealed class ChunkPatchBuilder(FileSystemStore store, ContentKey contentKey, ReleaseSigningKey signingKey)
{
    /// <summary>Bytes of the base file taken before and after the chunk's proportional position.</summary>
    public const int Window = 96 * 1024;

    /// <summary>Chunks patched in parallel before their results are appended in order.</summary>
    public const int BatchSize = 64;

    /// <summary>zstd level of the patches (1 .. 22).</summary>
    public int Level { get; init; } = PatchCodec.DefaultLevel;

    /// <summary>Workers coding patches at once.</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Builds the patches of <paramref name="product"/> <paramref name="version"/> against
    /// <paramref name="baseVersion"/> (default: the release listed just before it). Idempotent.
    /// </summary>
    public ChunkPatchBuildResult Build(string product, string version, string? baseVersion, CancellationToken ct = default)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(version);
        if (baseVersion is not null) StoreNames.RequireVersion(baseVersion);
        if (Level is < 1 or > PatchCodec.MaxLevel)
            throw new InvalidInputException($"--level {Level} is outside 1..{PatchCodec.MaxLevel}.");
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        using var writerLock = store.AcquireWriterLock();
        var index = ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath(product))
            ?? throw new InvalidInputException($"Product '{product}' has no releases in store '{store.Root}': check --product and --store."));
        var listed = string.Join(", ", index.Versions.Select(v => v.Version));
        var target = index.FindByVersion(version)
            ?? throw new InvalidInputException($"Version '{version}' of '{product}' is not published (listed: {listed}): check --version.");
        ReleaseIndexEntry source;
        if (baseVersion is null)
        {
            var at = index.Versions.ToList().IndexOf(target);
            source = at > 0 ? index.Versions[at - 1]
                : throw new InvalidInputException($"Version '{version}' is the first release of '{product}': there is no earlier release to patch against; pass --base VERSION.");
        }
        else
        {
            source = index.FindByVersion(baseVersion)
                ?? throw new InvalidInputException($"Base version '{baseVersion}' of '{product}' is not published (listed: {listed}): check --base.");
            if (source.Version == target.Version)
                throw new InvalidInputException($"--base {baseVersion} is --version itself: pass an earlier release that devices run.");
        }
        var targetBytes = ReadRequired(target.ManifestPath);
        var sourceBytes = ReadRequired(source.ManifestPath);
        var to = ManifestSerializer.Parse(targetBytes);
        var from = ManifestSerializer.Parse(sourceBytes);
        var indexPath = StoreLayout.ChunkPatchIndexPathFor(target.ManifestPath);
        var sourceSha = PackIndex.ManifestHashOf(sourceBytes);
        if (ChunkPatchIndex.ReadStored(store, target.ManifestPath, targetBytes, to) is { } existing && existing.BaseManifestSha256 == sourceSha)
            return new ChunkPatchBuildResult(indexPath, target.Version, source.Version, true, 0, existing.Entries.Count,
                existing.Entries.Sum(e => (long)e.Stored), 0, 0, clock.Elapsed, Process.GetCurrentProcess().TotalProcessorTime - cpu);

        var locator = new ChunkLocator(store, reloadOnMiss: false);
        var order = PackIndex.ChunkOrder(to);
        var ordinal = new Dictionary<ChunkId, int>(order.Count);
        for (var i = 0; i < order.Count; i++) ordinal[order[i]] = i;
        var jobs = Candidates(from, to, ordinal);

        var writer = new PackWriter(store);
        var kept = new List<(Job Job, ChunkId Patch, int Stored, int ChunkStored)>();
        long sequence = 0;
        for (var start = 0; start < jobs.Count; start += BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            var batch = jobs.Skip(start).Take(BatchSize).ToList();
            var results = new EncodedChunk?[batch.Count];
            var chunkStored = new int[batch.Count];
            Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Parallelism), CancellationToken = ct }, i =>
            {
                var job = batch[i];
                var stored = (int)(locator.StoredLength(job.Chunk.Id)
                    ?? throw new InvalidInputException($"Chunk {job.Chunk.Id} of {product} {version} is missing from store '{store.Root}': run 'orch store verify'."));
                var plain = Decode(locator, job.Chunk);
                var region = ReadRegion(locator, job.Base, job.BaseOffset, job.BaseLength);
                var patch = PatchCodec.Create(region, plain, Level);
                if (patch.Length + ChunkCodec.HeaderLength + ChunkCodec.TagLength >= stored) return;
                results[i] = ChunkCodec.EncodeUncompressed(patch, contentKey);
                chunkStored[i] = stored;
            });
            for (var i = 0; i < batch.Count; i++)
            {
                if (results[i] is not { } encoded) continue;
                writer.Offer(sequence++, encoded.Id, encoded.Stored, append: true);
                kept.Add((batch[i], encoded.Id, encoded.Stored.Length, chunkStored[i]));
            }
        }
        writer.Complete();

        var bases = new List<PatchBase>();
        var baseOrdinal = new Dictionary<string, int>(StringComparer.Ordinal);
        var packOrdinal = new Dictionary<ChunkId, int>();
        var entries = new List<ChunkPatchEntry>(kept.Count);
        foreach (var (job, patch, storedLength, _) in kept)
        {
            var at = writer.Written[patch];
            if (!baseOrdinal.TryGetValue(job.Base.Sha256, out var b))
            {
                bases.Add(new PatchBase(job.Base.Sha256, job.Base.Size));
                b = baseOrdinal[job.Base.Sha256] = bases.Count - 1;
            }
            if (!packOrdinal.TryGetValue(at.Pack, out var p))
                p = packOrdinal[at.Pack] = packOrdinal.Count;
            entries.Add(new ChunkPatchEntry(job.Ordinal, b, job.BaseOffset, job.BaseLength, p, at.Offset, storedLength, patch));
        }
        var packs = writer.Packs.Where(p => packOrdinal.ContainsKey(p.Id)).OrderBy(p => packOrdinal[p.Id]).ToList();
        var signed = new ChunkPatchIndex(PackIndex.ManifestHashOf(targetBytes), sourceSha, bases, packs, entries).SerializeSigned(signingKey);
        // Packs durable before the index that names them.
        store.Flush();
        store.WriteFile(indexPath, signed);
        store.Flush();
        return new ChunkPatchBuildResult(indexPath, target.Version, source.Version, false, jobs.Count, entries.Count,
            kept.Sum(k => (long)k.Stored), kept.Sum(k => (long)k.ChunkStored), writer.Packs.Count, clock.Elapsed,
            Process.GetCurrentProcess().TotalProcessorTime - cpu);
    }

    private sealed record Job(int Ordinal, ChunkRef Chunk, ManifestFile Base, long BaseOffset, int BaseLength);

    /// <summary>
    /// Each distinct new chunk (plaintext tag not in the base release) of a file that changed and exists at the same
    /// path in the base, with its base region: the chunk's offset scaled by the files' length ratio, widened by
    /// <see cref="Window"/> on both sides and clipped to the base file.
    /// </summary>
    private static List<Job> Candidates(Manifest from, Manifest to, Dictionary<ChunkId, int> ordinal)
    {
        var sourceTags = from.Files.SelectMany(f => f.Chunks).Select(c => c.Tag).ToHashSet(StringComparer.Ordinal);
        var sourceByPath = from.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var seen = new HashSet<ChunkId>();
        var jobs = new List<Job>();
        foreach (var f in to.Files)
        {
            // Small-file stream chunks are not patched: each spans several small files, and a changed small file costs
            // the one or two chunks covering it, no more than a patch object's own overhead would save.
            if (f.InStream) continue;
            long offset = 0;
            foreach (var c in f.Chunks)
            {
                var chunkOffset = offset;
                offset += c.Length;
                if (!sourceByPath.TryGetValue(f.Path, out var b) || b.Size == 0 || b.InStream || b.Sha256 == f.Sha256) continue;
                if (sourceTags.Contains(c.Tag) || !seen.Add(c.Id)) continue;
                var center = f.Size == 0 ? 0 : (long)((double)chunkOffset * b.Size / f.Size);
                var s = Math.Clamp(center - Window, 0, b.Size);
                var e = Math.Clamp(center + c.Length + Window, 0, b.Size);
                if (e - s > ChunkPatchIndex.MaxBaseRegion) e = s + ChunkPatchIndex.MaxBaseRegion;
                if (e <= s) continue;
                jobs.Add(new Job(ordinal[c.Id], c, b, s, (int)(e - s)));
            }
        }
        return jobs.OrderBy(j => j.Ordinal).ToList();
    }

    private byte[] Decode(ChunkLocator locator, ChunkRef chunk)
    {
        var stored = locator.Read(chunk.Id)
            ?? throw new InvalidInputException($"Chunk {chunk.Id} is missing from store '{store.Root}' or corrupt: run 'orch store verify'.");
        return ChunkCodec.Decode(stored, contentKey, chunk.Length, chunk.Id);
    }

    /// <summary>Bytes [offset, offset + length) of a base file, decoded from only the chunks that overlap them.</summary>
    private byte[] ReadRegion(ChunkLocator locator, ManifestFile file, long offset, int length)
    {
        var region = new byte[length];
        long at = 0;
        foreach (var c in file.Chunks)
        {
            var end = at + c.Length;
            if (end > offset && at < offset + length)
            {
                var plain = Decode(locator, c);
                var from = Math.Max(at, offset);
                var to = Math.Min(end, offset + length);
                plain.AsSpan((int)(from - at), (int)(to - from)).CopyTo(region.AsSpan((int)(from - offset)));
            }
            if (end >= offset + length) break;
            at = end;
        }
        return region;
    }

    private byte[] ReadRequired(string path) =>
        store.ReadFile(path) ?? throw new InvalidInputException($"{path} is listed but missing from store '{store.Root}': run 'orch store verify'.");
}
