using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>What one install takes from where: reused files, chunk places, local and missing chunks, patches and release files.</summary>
internal sealed record InstallPlan(
    Dictionary<string, string> ReuseFile,            // unchanged: manifest path -> local full path with the same content
    List<ManifestFile> ChunkFiles,                   // files assembled from chunks in the build
    Dictionary<ChunkId, List<ChunkPlace>> Places,    // chunks still to write into the build -> where each goes
    Dictionary<ChunkId, LocalChunk> Local,           // chunks readable from local files
    Dictionary<ChunkId, int> Missing,                // chunks to fetch -> plaintext length
    int Resumed,                                     // chunk places an earlier attempt wrote, verified by their tags
    List<(DeltaFile File, string SourcePath)> Patches, // files to rebuild from a patch and the local source
    List<ManifestFile> ReleaseFiles);                // files to rebuild from the whole-release stream

/// <summary>Plans an install against the installed tree (<see cref="InstallPlan"/>).</summary>
internal sealed class InstallPlanner(ZoneLayout layout, DownloadSettings download, Action<string> log)
{
    /// <summary>
    /// Decides, file by file, where the target's content comes from: an installed file with the same hash, a build an
    /// earlier attempt left, the whole-release delta, a delta patch (within the memory limit), or chunks (local first).
    /// </summary>
    public InstallPlan Plan(Manifest manifest, IReadOnlyList<InventoryEntry> inventory, DeltaManifest? delta, TreeBuild build, ContentKey key)
    {
        var localByHash = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in inventory) localByHash.TryAdd(e.Sha256, TreeInventory.ResolveInside(layout.Client, e.Path));
        var localByPath = inventory.ToDictionary(e => e.Path, e => e.Sha256, StringComparer.Ordinal);
        var patchable = delta?.Files.Where(f => f.Method == DeltaMethod.Patch).ToDictionary(f => f.Path, StringComparer.Ordinal)
            ?? new Dictionary<string, DeltaFile>(StringComparer.Ordinal);
        var inRelease = delta is not null && ReleaseUsable(delta, localByPath)
            ? delta.ReleaseFiles.ToDictionary(f => f.Path, StringComparer.Ordinal)
            : new Dictionary<string, DeltaFile>(StringComparer.Ordinal);
        var reuse = new Dictionary<string, string>(StringComparer.Ordinal);
        var chunkFiles = new List<ManifestFile>();
        var places = new Dictionary<ChunkId, List<ChunkPlace>>();
        var patches = new List<(DeltaFile, string)>();
        var releaseFiles = new List<ManifestFile>();
        var resumed = 0;
        foreach (var f in manifest.Files)
        {
            if (localByHash.TryGetValue(f.Sha256, out var same)) { reuse[f.Path] = same; continue; }
            bool[] done;
            try
            {
                done = build.Verified(f, key);
            }
            catch (InvalidDataException e)
            {
                throw new SessionFailedException(FailureStage.Verify, e.Message, e);
            }
            var resumedHere = done.Count(d => d);
            resumed += resumedHere;
            if (resumedHere == 0 && inRelease.TryGetValue(f.Path, out var r) && r.Sha256 == f.Sha256 && r.Size == f.Size)
            {
                releaseFiles.Add(f);
                continue;
            }
            // A patch applies only to the exact source content it was made from (the repair case falls back to chunks).
            if (resumedHere == 0 && patchable.TryGetValue(f.Path, out var p) && p.Sha256 == f.Sha256 && p.Size == f.Size
                && localByPath.TryGetValue(p.SourcePath, out var localSha) && localSha == p.SourceSha256)
            {
                var source = TreeInventory.ResolveInside(layout.Client, p.SourcePath);
                // A patch is applied in memory; above the limit the file comes from chunks, which stream.
                var memory = DeltaApplier.MemoryNeeded(p, new FileInfo(source).Length);
                if (1L << p.WindowLog > download.MaxDeltaWindowBytes)
                    log($"delta patch for '{f.Path}' declares a {1L << p.WindowLog}-byte window, over download.maxDeltaWindowBytes {download.MaxDeltaWindowBytes}; fetching its chunks instead");
                else if (memory <= download.MaxDeltaApplyBytes)
                {
                    patches.Add((p, source));
                    continue;
                }
                else
                    log($"delta patch for '{f.Path}' needs {memory} bytes of memory, over download.maxDeltaApplyBytes {download.MaxDeltaApplyBytes}; fetching its chunks instead");
            }
            AddPlaces(f, done, chunkFiles, places);
        }
        var local = LocalChunkIndex.Build(layout.Client, inventory, manifest, key, places.Keys.ToHashSet(), CancellationToken.None);
        var missing = places.Where(n => !local.ContainsKey(n.Key)).ToDictionary(n => n.Key, n => n.Value[0].Chunk.Length);
        return new InstallPlan(reuse, chunkFiles, places, local, missing, resumed, patches, releaseFiles);
    }

    /// <summary>
    /// Whether the whole-release stream is worth applying here: its declared window fits download.maxDeltaWindowBytes,
    /// a frame's managed memory fits download.maxDeltaApplyBytes, and the local tree holds at least half of the reference (by bytes, per-file hashes);
    /// with less, most frames would decode wrong and their files be fetched twice.
    /// </summary>
    private bool ReleaseUsable(DeltaManifest delta, Dictionary<string, string> localByPath)
    {
        if (delta.Release is not { } stream) return false;
        // The bound on what applying takes: the mapped reference + stream within the declared window, one frame on the heap.
        if (1L << stream.WindowLog > download.MaxDeltaWindowBytes)
        {
            log($"whole-release delta declares a {1L << stream.WindowLog}-byte window, over download.maxDeltaWindowBytes {download.MaxDeltaWindowBytes}; fetching chunks instead");
            return false;
        }
        var heap = ReleaseDeltaApplier.HeapNeeded(stream);
        if (heap > download.MaxDeltaApplyBytes)
        {
            log($"whole-release delta needs {heap} bytes of memory per object, over download.maxDeltaApplyBytes {download.MaxDeltaApplyBytes}; fetching chunks instead");
            return false;
        }
        var held = stream.Sources.Where(src => localByPath.TryGetValue(src.Path, out var sha) && sha == src.Sha256).Sum(src => src.Size);
        if (held * 2 < stream.SourceLength)
        {
            log($"whole-release delta not used: the installed tree holds {held} of its {stream.SourceLength} reference bytes; fetching chunks instead");
            return false;
        }
        return true;
    }

    /// <summary>The chunks the files whose patch failed need, on top of what is already planned.</summary>
    public InstallPlan PlanFallback(Manifest manifest, IReadOnlyList<InventoryEntry> inventory, InstallPlan plan, IReadOnlyList<string> paths, ContentKey key)
    {
        var wanted = paths.ToHashSet(StringComparer.Ordinal);
        foreach (var f in manifest.Files.Where(f => wanted.Contains(f.Path))) AddPlaces(f, null, plan.ChunkFiles, plan.Places);
        var needed = plan.Places.Keys.Where(id => !plan.Local.ContainsKey(id) && !plan.Missing.ContainsKey(id)).ToHashSet();
        var local = LocalChunkIndex.Build(layout.Client, inventory, manifest, key, needed, CancellationToken.None);
        foreach (var (id, chunk) in local) plan.Local.TryAdd(id, chunk);
        foreach (var id in needed.Where(id => !local.ContainsKey(id))) plan.Missing.TryAdd(id, plan.Places[id][0].Chunk.Length);
        return plan;
    }

    /// <summary>Adds a file to the chunk build: every chunk not already <paramref name="done"/> gets its place.</summary>
    private static void AddPlaces(ManifestFile f, bool[]? done, List<ManifestFile> chunkFiles, Dictionary<ChunkId, List<ChunkPlace>> places)
    {
        chunkFiles.Add(f);
        var i = 0;
        foreach (var piece in f.Pieces())
        {
            if (done is null || !done[i])
            {
                // Most chunks have one place; a list sized for one keeps a large file's plan small.
                if (!places.TryGetValue(piece.Chunk.Id, out var list)) places[piece.Chunk.Id] = list = new List<ChunkPlace>(1);
                list.Add(new ChunkPlace(f, piece));
            }
            i++;
        }
    }
}
