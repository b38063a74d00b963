using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>What a device holding one release fetches from the store to install another (<c>orch release plan</c>).</summary>
/// <param name="Method">"delta" (a delta manifest is fetched and used) or "chunks".</param>
/// <param name="Bytes">Every byte fetched: target manifest (its compact encoding where the store has one) and signature, delta manifest and signature, objects.</param>
/// <param name="Requests">HTTP requests to the store (one per file or pack range; no retries, no resumes).</param>
/// <param name="Objects">Objects fetched (release frames, patch parts, chunks, whether as their own object or inside a pack range).</param>
public sealed record InstallFetchPlan(string Method, long Bytes, int Requests, int Objects);

/// <summary>
/// Mirrors the agent's install plan for a device whose tree is exactly the source release, installed by an agent that
/// kept its manifest (so it fetches the target manifest's patch against it where the store has one): unchanged content is
/// copied locally; whole-release frames, then per-file patches, where the agent would use them (within its
/// <c>download.maxDeltaApplyBytes</c>); every other file from the chunks whose plaintext
/// (keyed tag) the source release does not hold, each once.
/// </summary>
public static class InstallFetchPlanner
{
    /// <summary>The agent's default <c>download.maxDeltaApplyBytes</c> (64 MiB).</summary>
    public const long DefaultMaxDeltaApplyBytes = 64L * 1024 * 1024;

    /// <summary>Plans <paramref name="fromVersion"/> → <paramref name="toVersion"/> with <paramref name="method"/> "auto", "delta" or "chunks".</summary>
    public static InstallFetchPlan Plan(FileSystemStore store, string product, string fromVersion, string toVersion, string method,
        long maxDeltaApplyBytes = DefaultMaxDeltaApplyBytes)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (method is not ("auto" or "delta" or "chunks"))
            throw new InvalidInputException($"--method '{method}' is not auto, delta or chunks.");
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(fromVersion);
        StoreNames.RequireVersion(toVersion);
        var index = ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath(product))
            ?? throw new InvalidInputException($"Product '{product}' has no releases in store '{store.Root}': check --product and --store."));
        var listed = string.Join(", ", index.Versions.Select(v => v.Version));
        var fromEntry = index.FindByVersion(fromVersion) ?? throw new InvalidInputException($"Version '{fromVersion}' of '{product}' is not published (listed: {listed}): check --from.");
        var toEntry = index.FindByVersion(toVersion) ?? throw new InvalidInputException($"Version '{toVersion}' of '{product}' is not published (listed: {listed}): check --to.");
        var from = ManifestSerializer.Parse(ReadRequired(store, fromEntry.ManifestPath));
        var to = ManifestSerializer.Parse(ReadRequired(store, toEntry.ManifestPath));

        long bytes = 0;
        var requests = 0;
        void Fetch(string path)
        {
            var info = new FileInfo(store.FullPath(path));
            bytes += info.Exists ? info.Length : throw new InvalidInputException($"{path} is missing from store '{store.Root}': run 'orch store verify'.");
            requests++;
        }
        // The target manifest as the gateway offers it (docs/store-format.md "Compact manifests"): the patch against the
        // source's manifest (which an agent keeps from installing it), else the whole frame, else the JSON.
        Fetch(CompactManifest.Offered(store, toEntry.ManifestPath, fromEntry.VersionId).FirstOrDefault() ?? toEntry.ManifestPath);
        Fetch(StoreLayout.SignaturePathFor(toEntry.ManifestPath));

        DeltaManifest? delta = null;
        var deltaPath = StoreLayout.DeltaManifestPath(product, fromVersion, toVersion);
        if (method != "chunks" && store.ReadFile(deltaPath) is { } deltaBytes)
        {
            delta = DeltaManifestSerializer.Parse(deltaBytes);
            Fetch(deltaPath);
            Fetch(StoreLayout.SignaturePathFor(deltaPath));
        }
        else if (method == "delta")
            throw new InvalidInputException($"No delta {product} {fromVersion} -> {toVersion} in store '{store.Root}': run 'orch delta build' first, or use --method auto or chunks.");

        var held = from.Files.Select(f => f.Sha256).ToHashSet(StringComparer.Ordinal);
        var sourceByPath = from.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        // The plaintexts the device finds by cutting its files: the source's own-file chunks. A small-file stream chunk is
        // found when the device holds every file it spans (StreamChunksHeld), as the agent's LocalChunkIndex does.
        var sourceTags = from.Files.Where(f => !f.InStream).SelectMany(f => f.Chunks).Select(c => c.Tag).ToHashSet(StringComparer.Ordinal);
        var streamHeld = StreamChunksHeld(to, held);
        var release = delta?.Release is { } stream && ReleaseDeltaApplier.HeapNeeded(stream) <= maxDeltaApplyBytes
            ? delta.ReleaseFiles.ToDictionary(f => f.Path, StringComparer.Ordinal)
            : new Dictionary<string, DeltaFile>(StringComparer.Ordinal);
        var patches = delta?.Files.Where(f => f.Method == DeltaMethod.Patch).ToDictionary(f => f.Path, StringComparer.Ordinal)
            ?? new Dictionary<string, DeltaFile>(StringComparer.Ordinal);

        var objects = new List<ChunkId>();
        var seen = new HashSet<ChunkId>();
        var releaseWanted = new HashSet<string>(StringComparer.Ordinal);
        var chunkIds = new List<ChunkId>();
        foreach (var f in to.Files)
        {
            if (held.Contains(f.Sha256)) continue;
            if (release.TryGetValue(f.Path, out var r) && r.Sha256 == f.Sha256) { releaseWanted.Add(f.Path); continue; }
            if (patches.TryGetValue(f.Path, out var p) && p.Sha256 == f.Sha256 && sourceByPath.TryGetValue(p.SourcePath, out var source)
                && source.Sha256 == p.SourceSha256 && DeltaApplier.MemoryNeeded(p, source.Size) <= maxDeltaApplyBytes)
            {
                foreach (var part in p.Parts) if (seen.Add(part.Id)) objects.Add(part.Id);
                continue;
            }
            foreach (var c in f.Chunks) if (!sourceTags.Contains(c.Tag) && !streamHeld.Contains(c.Id)) chunkIds.Add(c.Id);
        }
        if (releaseWanted.Count > 0)
            foreach (var i in ReleaseDeltaApplier.FramesFor(delta!, f => releaseWanted.Contains(f.Path)))
                if (seen.Add(delta!.Release!.Frames[i].Id)) objects.Add(delta.Release.Frames[i].Id);
        foreach (var id in objects) Fetch(StoreLayout.ChunkPath(id));
        var chunks = chunkIds.Where(seen.Add).ToList();
        var chunkObjects = chunks.Count;
        if (chunks.Count > 0)
        {
            var toBytes = ReadRequired(store, toEntry.ManifestPath);
            // Chunk patches next (docs/store-format.md, "Chunk patches"): asked for whenever chunks are missing (404 when
            // none were built); a chunk whose patch's base file the device holds comes as that patch, in coalesced ranges.
            var patchIndexPath = StoreLayout.ChunkPatchIndexPathFor(toEntry.ManifestPath);
            if (ChunkPatchIndex.ReadStored(store, toEntry.ManifestPath, toBytes, to) is { } patchIndex)
            {
                Fetch(patchIndexPath);
                var patched = patchIndex.Resolve(PackIndex.ChunkOrder(to));
                var usable = chunks.Where(id => patched.TryGetValue(id, out var p) && held.Contains(p.BaseSha256)).ToHashSet();
                foreach (var range in PackRanges.Coalesce(usable.Select(id => patched[id].Patch)))
                {
                    bytes += range.Length;
                    requests++;
                }
                chunks = chunks.Where(id => !usable.Contains(id)).ToList();
                chunkObjects = chunks.Count + usable.Select(id => patched[id].Patch.Chunk).Distinct().Count();
            }
            else requests++;
        }
        if (chunks.Count > 0)
        {
            // The agent asks for the pack index only when it has chunks to fetch; a store without one answers 404
            // (one request, no body counted) and every chunk is its own object.
            var toBytes = ReadRequired(store, toEntry.ManifestPath);
            var located = new Dictionary<ChunkId, PackedChunk>();
            var packIndexPath = StoreLayout.PackIndexPathFor(toEntry.ManifestPath);
            if (PackIndex.ReadStored(store, toEntry.ManifestPath, toBytes, to) is { } packIndex)
            {
                Fetch(packIndexPath);
                located = packIndex.Locate(PackIndex.ChunkOrder(to));
            }
            else requests++;
            foreach (var range in PackRanges.Coalesce(chunks.Where(located.ContainsKey).Select(id => located[id])))
            {
                bytes += range.Length;
                requests++;
            }
            foreach (var id in chunks.Where(id => !located.ContainsKey(id))) Fetch(StoreLayout.ChunkPath(id));
        }
        return new InstallFetchPlan(delta is null ? "chunks" : "delta", bytes, requests, objects.Count + chunkObjects);
    }

    /// <summary>The small-file stream chunks of <paramref name="to"/> every one of whose files has a hash in <paramref name="held"/>.</summary>
    public static HashSet<ChunkId> StreamChunksHeld(Manifest to, IReadOnlySet<string> held)
    {
        ArgumentNullException.ThrowIfNull(to);
        ArgumentNullException.ThrowIfNull(held);
        var result = new HashSet<ChunkId>();
        if (to.Stream is not { } stream) return result;
        var missing = new HashSet<ChunkId>();
        foreach (var f in to.Files)
            if (f.InStream)
                foreach (var c in f.Chunks)
                    (held.Contains(f.Sha256) ? result : missing).Add(c.Id);
        result.ExceptWith(missing);
        return result;
    }

    private static byte[] ReadRequired(FileSystemStore store, string path) =>
        store.ReadFile(path) ?? throw new InvalidInputException($"{path} is listed but missing from store '{store.Root}': run 'orch store verify'.");
}
