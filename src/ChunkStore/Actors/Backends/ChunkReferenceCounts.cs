using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.ChunkStore.Actors.Backends;

/// <summary>
/// How many published manifests reference each chunk. Counts are derived from the store's indexes (the source of
/// truth) each time, never kept as a separate counter that could drift from what is published.
/// </summary>
public sealed class ChunkReferenceCounts
{
    private readonly Dictionary<string, int> _counts;

    private ChunkReferenceCounts(Dictionary<string, int> counts, int manifests)
    {
        _counts = counts;
        Manifests = manifests;
    }

    /// <summary>Manifests counted.</summary>
    public int Manifests { get; }

    /// <summary>Distinct chunks referenced.</summary>
    public int Chunks => _counts.Count;

    /// <summary>Number of manifests that reference the chunk (0 when none).</summary>
    public int this[string chunkId] => _counts.GetValueOrDefault(chunkId);

    /// <summary>Counts over the given manifests (each manifest counts a chunk once, however often it repeats).</summary>
    public static ChunkReferenceCounts FromManifests(IEnumerable<Manifest> manifests)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var n = 0;
        foreach (var m in manifests)
        {
            n++;
            foreach (var id in m.DistinctChunks()) counts[id.Hex] = counts.GetValueOrDefault(id.Hex) + 1;
        }
        return new ChunkReferenceCounts(counts, n);
    }

    /// <summary>
    /// Counts over every version listed in the store's release indexes, plus the patch objects of every signed delta
    /// manifest whose two versions are both listed (each such delta counts as one more referrer). Throws if a listed
    /// manifest is missing or unreadable, so a damaged store never makes chunks look unreferenced.
    /// </summary>
    public static ChunkReferenceCounts FromStore(FileSystemStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var manifests = new List<Manifest>();
        var listed = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var product in store.EnumerateProducts())
        {
            var indexBytes = store.ReadFile(StoreLayout.IndexPath(product));
            if (indexBytes is null) continue;
            var versions = listed[product] = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in ReleaseIndex.Parse(indexBytes).Versions)
            {
                var bytes = store.ReadFile(entry.ManifestPath)
                    ?? throw new InvalidOperationException($"Manifest {entry.ManifestPath} is listed but missing; run orch store verify before collecting garbage.");
                manifests.Add(ManifestSerializer.Parse(bytes));
                versions.Add(entry.Version);
            }
        }
        var counts = FromManifests(manifests);
        foreach (var product in store.EnumerateDeltaProducts())
        {
            foreach (var path in store.EnumerateDeltaManifests(product))
            {
                var bytes = store.ReadFile(path);
                if (bytes is null || !store.FileExists(StoreLayout.SignaturePathFor(path))) continue; // unsigned: an interrupted build
                DeltaManifest delta;
                try { delta = DeltaManifestSerializer.Parse(bytes); }
                catch (Validation.InvalidInputException) { continue; } // unreadable: never offered, rebuilt on demand
                if (!listed.TryGetValue(product, out var versions) || !versions.Contains(delta.From.Version) || !versions.Contains(delta.To.Version)) continue;
                foreach (var id in delta.DistinctObjects()) counts._counts[id.Hex] = counts._counts.GetValueOrDefault(id.Hex) + 1;
            }
        }
        return counts;
    }
}

/// <summary>Outcome of a garbage collection over a blob backend.</summary>
/// <param name="Examined">Chunks listed by the backend (old enough to be considered).</param>
/// <param name="Referenced">Chunks kept because a manifest references them.</param>
/// <param name="Deleted">Chunks deleted (or that would be, in a dry run).</param>
/// <param name="DryRun">True when nothing was deleted.</param>
public sealed record BlobGcReport(long Examined, long Referenced, long Deleted, bool DryRun);

/// <summary>
/// Deletes chunks no manifest references from a blob backend. Chunks stored less than the grace period ago are
/// left alone: they may belong to a publish whose manifest is not committed yet.
/// </summary>
public static class BlobGarbageCollector
{
    /// <summary>Runs one collection.</summary>
    public static async Task<BlobGcReport> CollectAsync(IChunkBlobStore blobs, ChunkReferenceCounts references, TimeSpan grace,
        DateTimeOffset now, bool dryRun, CancellationToken ct = default)
    {
        long examined = 0, referenced = 0, deleted = 0;
        var candidates = new List<string>();
        await foreach (var id in blobs.ListAsync(now - grace, ct).ConfigureAwait(false))
        {
            examined++;
            if (references[id] > 0) referenced++;
            else candidates.Add(id);
        }
        foreach (var id in candidates)
        {
            if (dryRun || await blobs.DeleteAsync(id, ct).ConfigureAwait(false)) deleted++;
        }
        return new BlobGcReport(examined, referenced, deleted, dryRun);
    }
}
