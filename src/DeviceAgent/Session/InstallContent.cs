using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// Fills the tree build of one install as its <see cref="InstallPlan"/> says: delta patches and whole-release frames
/// (a file whose delta cannot be used falls back to chunks), chunks read from installed files, and the missing chunks
/// downloaded, each decoded straight into its places.
/// </summary>
internal sealed class InstallContent(ZoneLayout layout, DownloadSettings download, ChunkCache cache, CrashPoints crash, TimeProvider time,
    Action<string> log, Func<ProgressReport, CancellationToken, Task> reportProgress)
{
    /// <summary>
    /// Rebuilds every planned file from its patch and local source, verifying source and result hashes
    /// (<see cref="DeltaApplier"/>); a verified result is written into the build. Returns the target paths whose patch
    /// could not be used.
    /// </summary>
    public List<string> ApplyPatches(InstallPlan plan, TreeBuild build, ContentKey key)
    {
        var failed = new List<string>();
        if (plan.Patches.Count == 0) return failed;
        foreach (var (file, sourcePath) in plan.Patches)
        {
            try
            {
                build.WriteWhole(file.Path, DeltaApplier.Apply(file, File.ReadAllBytes(sourcePath), id => cache.TryRead(id.Hex), key));
            }
            catch (Exception e) when (e is IntegrityException or IOException)
            {
                log($"delta patch for '{file.Path}' not used ({e.Message}); fetching its chunks instead");
                failed.Add(file.Path);
            }
        }
        return failed;
    }

    /// <summary>Fetches the frames holding the planned release files into the cache (resumable per object); one that no source serves intact is left out (its files fall back).</summary>
    public Task DownloadReleaseFramesAsync(StoreDownloader downloader, DeltaManifest delta, InstallPlan plan, CancellationToken ct)
    {
        var wanted = plan.ReleaseFiles.Select(f => f.Path).ToHashSet(StringComparer.Ordinal);
        var frames = ReleaseDeltaApplier.FramesFor(delta, f => wanted.Contains(f.Path)).Select(i => delta.Release!.Frames[i]);
        return FetchDeltaObjectsAsync(downloader, frames, "release delta object", "its files fall back to chunks", ct);
    }

    /// <summary>
    /// Rebuilds the planned release files: the reference from the installed files (zeros for any whose hash is not the
    /// source's), memory-mapped; frames decoded one by one into the build; then every file checked against the target
    /// manifest. Returns the paths that did not come out right (they fall back to chunks).
    /// </summary>
    public List<string> ApplyRelease(DeltaManifest delta, InstallPlan plan, IReadOnlyList<InventoryEntry> inventory, TreeBuild build, ContentKey key)
    {
        var stream = delta.Release!;
        var localByPath = inventory.ToDictionary(e => e.Path, e => e.Sha256, StringComparer.Ordinal);
        var wanted = plan.ReleaseFiles.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var reference = Path.Combine(layout.Work, "release-reference");
        var failed = new List<string>();
        try
        {
            ReleaseDeltaApplier.WriteReference(stream,
                src => localByPath.TryGetValue(src.Path, out var sha) && sha == src.Sha256 ? TreeInventory.ResolveInside(layout.Client, src.Path) : null,
                reference);
            foreach (var f in plan.ReleaseFiles) build.Allocate(f);
            var frames = ReleaseDeltaApplier.FramesFor(delta, f => wanted.ContainsKey(f.Path));
            ReleaseDeltaApplier.Apply(delta, reference, frames, id => cache.TryRead(id.Hex), key,
                (file, offset, bytes) => { if (wanted.ContainsKey(file.Path)) build.WriteAt(file.Path, offset, bytes); },
                (index, why) => log($"release delta object {index} not used ({why}); its files fall back to chunks"));
        }
        catch (IOException e)
        {
            log($"whole-release delta not applied ({e.Message}); fetching its files' chunks instead");
            return plan.ReleaseFiles.Select(f => f.Path).ToList();
        }
        finally
        {
            DurableFile.TryDelete(reference);
        }
        foreach (var f in plan.ReleaseFiles)
        {
            if (build.Finish(f) is not { } wrong) continue;
            log($"whole-release delta: {wrong}; fetching its chunks instead");
            failed.Add(f.Path);
        }
        return failed;
    }

    /// <summary>Fetches the patch objects into the cache; one that no source serves intact is left out (its file falls back).</summary>
    public Task DownloadPatchesAsync(StoreDownloader downloader, InstallPlan plan, CancellationToken ct) =>
        FetchDeltaObjectsAsync(downloader, plan.Patches.SelectMany(p => p.File.Parts), "patch object", "its file falls back to chunks", ct);

    /// <summary>Fetches delta objects into the cache, each once; a failure only leaves that object out (said in the log).</summary>
    private Task FetchDeltaObjectsAsync(StoreDownloader downloader, IEnumerable<DeltaPart> parts, string what, string consequence, CancellationToken ct) =>
        Parallel.ForEachAsync(parts.DistinctBy(p => p.Id).ToList(), new ParallelOptions { MaxDegreeOfParallelism = download.Parallelism, CancellationToken = ct },
            async (part, token) =>
            {
                try
                {
                    await downloader.FetchChunkAsync(part.Id.Hex, StoreLayout.ChunkPath(part.Id), part.Stored, token);
                }
                catch (DownloadFailedException e)
                {
                    log($"{what} {part.Id} not fetched ({e.Message}); {consequence}");
                }
            });

    /// <summary>
    /// Sizes every file of the chunk build and writes the chunks found in local files into their places. A local piece
    /// whose tag no longer matches (the file changed since the plan) is downloaded instead.
    /// </summary>
    public void PlaceLocalChunks(InstallPlan plan, TreeBuild build, ContentKey key)
    {
        foreach (var f in plan.ChunkFiles) build.Allocate(f);
        byte[] buffer = [];
        foreach (var (id, places) in plan.Places)
        {
            if (plan.Missing.ContainsKey(id) || !plan.Local.TryGetValue(id, out var local)) continue;
            if (buffer.Length < local.Length) buffer = new byte[local.Length];
            var piece = buffer.AsSpan(0, local.Length);
            if (!local.TryRead(piece) || ChunkCodec.ManifestTag(piece, key) != places[0].Chunk.Tag)
            {
                log($"chunk {id} changed in '{local.FullPath}' since the plan; downloading it");
                plan.Missing[id] = places[0].Chunk.Length;
                continue;
            }
            build.Write(places, piece);
        }
    }

    /// <summary>
    /// Rebuilds missing chunks from chunk patches (docs/store-format.md, "Chunk patches"): for each missing chunk whose
    /// patch's base file the installed tree holds (its verified hash in <paramref name="inventory"/>), the patch objects
    /// are fetched with coalesced Range requests on their packs (each checked against its id), decoded, applied to the
    /// base region read from the local file, and the result accepted only when its length and keyed tag are the
    /// manifest's; it is then written into its places and leaves <see cref="InstallPlan.Missing"/>. Anything else (a
    /// range no source serves intact, a changed base file, a patch that does not verify) leaves the chunk missing, so it
    /// is downloaded itself. Memory per patch in flight: its base region and patch object (each at most 1 MiB by the
    /// index's rules) and the chunk.
    /// </summary>
    public async Task<int> ApplyChunkPatchesAsync(StoreDownloader downloader, InstallPlan plan, TreeBuild build, ContentKey key,
        IReadOnlyDictionary<ChunkId, PatchedChunk> patches, IReadOnlyList<InventoryEntry> inventory, CancellationToken ct)
    {
        var baseFiles = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in inventory) baseFiles.TryAdd(e.Sha256, e.Path);
        var usable = plan.Missing.Keys.Where(id => patches.TryGetValue(id, out var p) && baseFiles.ContainsKey(p.BaseSha256)).ToList();
        if (usable.Count == 0) return 0;
        var byPatch = usable.GroupBy(id => patches[id].Patch.Chunk).ToDictionary(g => g.Key, g => g.ToList());
        var ranges = PackRanges.Coalesce(usable.Select(id => patches[id].Patch));
        var rebuilt = new System.Collections.Concurrent.ConcurrentBag<ChunkId>();
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = download.Parallelism, CancellationToken = ct };
        try
        {
            await Parallel.ForEachAsync(ranges, parallel, async (range, token) =>
            {
                await downloader.FetchPackRangeAsync(range, (patchObject, stored) =>
                {
                    foreach (var id in byPatch[patchObject.Chunk])
                        if (TryApplyChunkPatch(id, patches[id], stored, baseFiles[patches[id].BaseSha256], plan, build, key)) rebuilt.Add(id);
                }, token);
            });
        }
        catch (DownloadFailedException e)
        {
            throw new SessionFailedException(FailureStage.Download, e.Message, e);
        }
        foreach (var id in rebuilt) plan.Missing.Remove(id);
        log($"{rebuilt.Count} of {usable.Count} chunk(s) rebuilt from chunk patches; {usable.Count - rebuilt.Count} fall back to the chunks themselves");
        return rebuilt.Count;
    }

    private bool TryApplyChunkPatch(ChunkId id, PatchedChunk patch, ReadOnlySpan<byte> stored, string basePath, InstallPlan plan, TreeBuild build, ContentKey key)
    {
        try
        {
            var region = new byte[patch.BaseLength];
            using (var handle = File.OpenHandle(TreeInventory.ResolveInside(layout.Client, basePath)))
                if (RandomAccess.Read(handle, region, patch.BaseOffset) != region.Length)
                    throw new IntegrityException($"base file '{basePath}' is shorter than the patch's region");
            var coded = ChunkCodec.Decode(stored, key, patch.PatchLength, patch.Patch.Chunk);
            var place = plan.Places[id][0].Chunk;
            var plain = PatchCodec.Apply(region, coded, place.Length, ChunkPatchIndex.WindowLog);
            if (ChunkCodec.ManifestTag(plain, key) != place.Tag)
                throw new IntegrityException("the patched bytes do not match the chunk's tag in the manifest");
            build.Write(plan.Places[id], plain);
            crash.Reached(CrashPoints.ChunkPlaced);
            return true;
        }
        catch (Exception e) when (e is IntegrityException or IOException or UnauthorizedAccessException)
        {
            log($"chunk patch for chunk {id} not used ({e.Message}); fetching the chunk itself");
            return false;
        }
    }

    /// <summary>
    /// Downloads the missing chunks and decodes each into its places in the build, reporting progress: those the pack
    /// index locates with coalesced Range requests on packs, the rest (and any a pack range could not deliver) as their
    /// own objects, resuming part files. <paramref name="packs"/> says where chunks lie in packs
    /// (<see cref="ReleaseVerification.TryFetchPackIndexAsync"/>); null fetches every chunk as its own object.
    /// </summary>
    public async Task DownloadAsync(StoreDownloader downloader, Manifest manifest, InstallPlan plan, TreeBuild build, ContentKey key,
        IReadOnlyDictionary<ChunkId, PackedChunk>? packs, CancellationToken ct)
    {
        var total = plan.Missing.Count;
        if (total == 0) return;
        var progress = new DownloadProgress(manifest.VersionId, total, plan.Missing.Sum(m => (long)m.Value), time.GetTimestamp());
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = download.Parallelism, CancellationToken = ct };
        var single = plan.Missing.Keys.Where(id => packs is null || !packs.ContainsKey(id)).ToList();
        try
        {
            if (packs is not null)
            {
                var ranges = PackRanges.Coalesce(plan.Missing.Keys.Where(packs.ContainsKey).Select(id => packs[id]));
                var leftOver = new System.Collections.Concurrent.ConcurrentBag<ChunkId>();
                await Parallel.ForEachAsync(ranges, parallel, async (range, token) =>
                {
                    var placed = 0;
                    var missed = await downloader.FetchPackRangeAsync(range, (chunk, stored) =>
                    {
                        Place(chunk.Chunk, plan.Missing[chunk.Chunk], stored, plan, build, key);
                        placed++;
                    }, token);
                    foreach (var c in missed) leftOver.Add(c.Chunk);
                    await ReportAsync(progress, placed, range.Chunks.Take(placed).Sum(c => (long)plan.Missing[c.Chunk]), token);
                });
                single.AddRange(leftOver);
            }
            await Parallel.ForEachAsync(single, parallel, async (id, token) =>
            {
                var length = plan.Missing[id];
                // Pooled stored buffer: a chunk passes through and leaves no garbage of its size behind.
                using (var stored = await downloader.FetchChunkRentedAsync(id.Hex, StoreLayout.ChunkPath(id), length + ChunkCodec.HeaderLength + ChunkCodec.TagLength, token))
                    Place(id, length, stored.Span, plan, build, key);
                cache.DeletePartial(id.Hex);
                await ReportAsync(progress, 1, length, token);
            });
        }
        catch (DownloadFailedException e)
        {
            throw new SessionFailedException(FailureStage.Download, e.Message, e);
        }
    }

    /// <summary>Decodes one verified chunk object into every place of it in the build.</summary>
    private void Place(ChunkId id, int length, ReadOnlySpan<byte> stored, InstallPlan plan, TreeBuild build, ContentKey key)
    {
        using var plain = RentedBytes.Rent(length);
        try
        {
            ChunkCodec.DecodeInto(stored, key, length, plain.Span, id);
        }
        catch (IntegrityException e)
        {
            // Verified against its id, so the object is what the store holds; it does not decode as the manifest says.
            cache.DeletePartial(id.Hex);
            throw new SessionFailedException(FailureStage.Verify, $"chunk {id} rejected: {e.Message}", e);
        }
        build.Write(plan.Places[id], plain.Span);
        crash.Reached(CrashPoints.ChunkPlaced);
    }

    /// <summary>Counts placed chunks and reports progress at most every two seconds (and at the end).</summary>
    private async Task ReportAsync(DownloadProgress p, int chunks, long bytes, CancellationToken ct)
    {
        var d = Interlocked.Add(ref p.Done, chunks);
        var b = Interlocked.Add(ref p.BytesDone, bytes);
        var now = time.GetTimestamp();
        if (d == p.Total || time.GetElapsedTime(Interlocked.Read(ref p.LastReport), now) > TimeSpan.FromSeconds(2))
        {
            Interlocked.Exchange(ref p.LastReport, now);
            await reportProgress(new ProgressReport(p.VersionId, b, p.BytesTotal, d, p.Total), ct);
        }
    }

    private sealed class DownloadProgress(long versionId, int total, long bytesTotal, long started)
    {
        public readonly long VersionId = versionId;
        public readonly int Total = total;
        public readonly long BytesTotal = bytesTotal;
        public int Done;
        public long BytesDone;
        public long LastReport = started;
    }
}
