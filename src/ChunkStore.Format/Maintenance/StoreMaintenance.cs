using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Maintenance;

/// <summary>Per-product figures.</summary>
/// <param name="Product">Product name.</param>
/// <param name="Versions">Versions listed in the index.</param>
/// <param name="LatestVersion">Newest version string, if any.</param>
/// <param name="LatestVersionId">Newest version ID (0 when none).</param>
/// <param name="Channels">Channel name to version string.</param>
/// <param name="DistinctChunks">Distinct chunks referenced by the product's listed manifests.</param>
/// <param name="LogicalBytes">Sum of file sizes over all listed versions (what storing each release whole would cost).</param>
public sealed record ProductStats(string Product, int Versions, string? LatestVersion, long LatestVersionId,
    IReadOnlyDictionary<string, string> Channels, long DistinctChunks, long LogicalBytes);

/// <summary>Store-wide figures (<c>orch store stats</c>).</summary>
/// <param name="Root">Store root.</param>
/// <param name="Chunks">Chunk objects on disk.</param>
/// <param name="ChunkBytes">Their stored bytes.</param>
/// <param name="ReferencedChunks">Chunks some listed manifest refers to.</param>
/// <param name="UnreferencedChunks">Chunks no listed manifest refers to (gc would delete them).</param>
/// <param name="UnreferencedBytes">Their bytes.</param>
/// <param name="TempFiles">Leftover temp files.</param>
/// <param name="Products">Per-product figures.</param>
public sealed record StoreStats(string Root, long Chunks, long ChunkBytes, long ReferencedChunks, long UnreferencedChunks,
    long UnreferencedBytes, int TempFiles, IReadOnlyList<ProductStats> Products)
{
    /// <summary>Pack objects on disk.</summary>
    public long Packs { get; init; }

    /// <summary>Their bytes (chunk objects stored only inside packs are counted here, not in <see cref="ChunkBytes"/>).</summary>
    public long PackBytes { get; init; }
}

/// <summary>Result of <see cref="StoreMaintenance.Verify"/>.</summary>
/// <param name="ChunksChecked">Chunk objects hashed.</param>
/// <param name="ManifestsChecked">Listed manifests parsed and cross-checked.</param>
/// <param name="SignaturesVerified">True when a public key was given and every signature was checked with it.</param>
/// <param name="Problems">Every problem found; empty means the store is intact.</param>
public sealed record VerifyReport(long ChunksChecked, int ManifestsChecked, bool SignaturesVerified, IReadOnlyList<string> Problems)
{
    /// <summary>True when no problem was found.</summary>
    public bool Ok => Problems.Count == 0;

    /// <summary>Files whose content was decrypted and checked end to end (0 without a content key).</summary>
    public long FilesDecrypted { get; init; }

    /// <summary>Chunk patches decrypted, applied to their base region and found to rebuild exactly their chunk (only with a content key).</summary>
    public long ChunkPatchesRebuilt { get; init; }
}

/// <summary>Which manifests garbage collection keeps.</summary>
/// <param name="KeepLast">Keep the newest N versions of each product (plus any version a channel points to); null keeps every listed version.</param>
/// <param name="DryRun">Report what would be deleted without deleting.</param>
public sealed record GcPolicy(int? KeepLast = null, bool DryRun = false);

/// <summary>Result of <see cref="StoreMaintenance.CollectGarbage"/>.</summary>
/// <param name="VersionsRemoved">"product/version" of manifests dropped from their index.</param>
/// <param name="ManifestFilesDeleted">Manifest and signature files deleted (dropped versions and unlisted leftovers).</param>
/// <param name="ChunksDeleted">Chunk objects deleted.</param>
/// <param name="BytesFreed">Their bytes.</param>
/// <param name="ChunksKept">Chunk objects still referenced.</param>
/// <param name="TempFilesDeleted">Leftover temp files deleted.</param>
/// <param name="DryRun">Nothing was deleted.</param>
public sealed record GcReport(IReadOnlyList<string> VersionsRemoved, int ManifestFilesDeleted, long ChunksDeleted, long BytesFreed,
    long ChunksKept, int TempFilesDeleted, bool DryRun)
{
    /// <summary>Publish-cache entries dropped because their chunk is gone (would be dropped, on a dry run).</summary>
    public long PublishCacheEntriesDropped { get; init; }

    /// <summary>Pack objects deleted (no retained release's pack index names them).</summary>
    public long PacksDeleted { get; init; }

    /// <summary>Packs kept whole although some of their bytes are chunks no retained release's index locates.</summary>
    public long PacksPartlyLive { get; init; }

    /// <summary>Bytes of those packs that no retained release's index locates (kept until the whole pack is dead).</summary>
    public long PackBytesUnreferenced { get; init; }
}

/// <summary>
/// Stats, integrity verification, and mark-and-sweep garbage collection of a <see cref="FileSystemStore"/>.
/// Only versions listed in a product's index count as published; gc takes the writer lock so it never races a
/// publish, and refuses to sweep anything if a retained manifest cannot be read.
/// </summary>
public sealed partial class StoreMaintenance(FileSystemStore store)
{
    private readonly FileSystemStore _store = store ?? throw new ArgumentNullException(nameof(store));
    private ChunkLocator? _locator;

    /// <summary>Counts and bytes; reads every listed manifest.</summary>
    public StoreStats Stats()
    {
        long chunks = 0, chunkBytes = 0, unreferenced = 0, unreferencedBytes = 0;
        var referenced = new HashSet<ChunkId>();
        var products = new List<ProductStats>();
        foreach (var product in _store.EnumerateProducts())
        {
            var index = ReadIndex(product);
            var productChunks = new HashSet<ChunkId>();
            long logical = 0;
            foreach (var entry in index.Versions)
            {
                var manifest = ReadManifest(entry);
                productChunks.UnionWith(manifest.DistinctChunks());
                logical += manifest.TotalBytes;
            }
            referenced.UnionWith(productChunks);
            var channels = _store.EnumerateChannels(product).ToDictionary(c => c, c => ReadChannel(product, c).Version);
            products.Add(new ProductStats(product, index.Versions.Count, index.Latest?.Version, index.Latest?.VersionId ?? 0,
                channels, productChunks.Count, logical));
        }
        foreach (var product in _store.EnumerateDeltaProducts())
            foreach (var path in _store.EnumerateDeltaManifests(product))
                if (TryReadDelta(path) is { } delta) referenced.UnionWith(delta.DistinctObjects());
        foreach (var id in _store.EnumerateChunks())
        {
            var size = _store.ChunkSize(id) ?? 0;
            chunks++;
            chunkBytes += size;
            if (!referenced.Contains(id)) { unreferenced++; unreferencedBytes += size; }
        }
        long packs = 0, packBytes = 0;
        foreach (var id in _store.EnumeratePacks())
        {
            packs++;
            packBytes += new FileInfo(_store.FullPath(StoreLayout.PackPath(id))).Length;
        }
        return new StoreStats(_store.Root, chunks, chunkBytes, chunks - unreferenced, unreferenced, unreferencedBytes,
            _store.EnumerateTempFiles().Count(), products) { Packs = packs, PackBytes = packBytes };
    }

    /// <summary>
    /// Hashes every chunk object against its id, checks its header, parses every listed manifest (and verifies
    /// its signature when <paramref name="publicKey"/> is given), checks that every referenced chunk is present
    /// with the expected plaintext length, and that channels point at listed versions. With
    /// <paramref name="contentKey"/> it also decrypts every file of every listed manifest as an agent would (tag,
    /// decompression, plaintext length, keyed plaintext tag of each chunk, then the file's size and SHA-256), so a
    /// store that hashes correctly but was encrypted with another key, or whose manifest does not describe its
    /// content, is found before devices fail on it. Never throws for damaged data: every finding goes into
    /// <see cref="VerifyReport.Problems"/>.
    /// </summary>
    public VerifyReport Verify(ReleasePublicKey? publicKey = null, IProgress<(long Done, long Total)>? progress = null, ContentKey? contentKey = null)
    {
        var filesDecrypted = 0L;
        var patchesRebuilt = 0L;
        var problems = new List<string>();
        var plainLengths = new Dictionary<ChunkId, int>();
        var ids = _store.EnumerateChunks().ToList();
        var present = ids.ToHashSet();
        long done = 0;
        foreach (var id in ids)
        {
            var bytes = _store.ReadChunk(id);
            done++;
            if (bytes is null) { problems.Add($"chunk {id}: disappeared while verifying"); continue; }
            if (!ChunkCodec.Verify(id, bytes))
                problems.Add($"chunk {id}: content hash is {ChunkId.Of(bytes)}, not its id (corrupted object)");
            else
            {
                try { plainLengths[id] = ChunkCodec.ReadPlainLength(bytes); }
                catch (IntegrityException ex) { problems.Add(ex.Message); }
            }
            if (done % 256 == 0) progress?.Report((done, ids.Count));
        }
        progress?.Report((done, ids.Count));

        var manifests = 0;
        foreach (var product in _store.EnumerateProducts())
        {
            ReleaseIndex index;
            try { index = ReadIndex(product); }
            catch (InvalidInputException ex) { problems.Add($"product {product}: {ex.Message}"); continue; }
            foreach (var entry in index.Versions)
            {
                manifests++;
                var label = $"manifest {product}/{entry.Version}";
                var bytes = _store.ReadFile(entry.ManifestPath);
                var signature = _store.ReadFile(StoreLayout.SignaturePathFor(entry.ManifestPath));
                if (bytes is null) { problems.Add($"{label}: listed in the index but {entry.ManifestPath} is missing"); continue; }
                if (signature is null) problems.Add($"{label}: signature file is missing");
                else if (signature.Length != ManifestSigner.SignatureLength) problems.Add($"{label}: signature file has {signature.Length} bytes, not 64");
                else if (publicKey is not null && !ManifestSigner.Verify(bytes, signature, publicKey))
                    problems.Add($"{label}: signature does not verify with the given public key");
                Manifest manifest;
                try { manifest = ManifestSerializer.Parse(bytes); }
                catch (InvalidInputException ex) { problems.Add($"{label}: {ex.Message}"); continue; }
                if (manifest.Product != product || manifest.Version != entry.Version || manifest.VersionId != entry.VersionId)
                    problems.Add($"{label}: manifest says {manifest.Product}/{manifest.Version} id {manifest.VersionId}, the index says {product}/{entry.Version} id {entry.VersionId}");
                problems.AddRange(CompactManifestProblems(label, index, entry, bytes));
                // What a device can fetch for this release: chunk objects, and the chunks its own pack index locates intact.
                var packed = new Dictionary<ChunkId, int>();
                problems.AddRange(PackProblems(label, entry.ManifestPath, bytes, manifest, publicKey, packed));
                problems.AddRange(ChunkPatchProblems(label, index, entry.ManifestPath, bytes, manifest, publicKey, contentKey, ref patchesRebuilt));
                foreach (var file in manifest.Files)
                {
                    var complete = true;
                    foreach (var chunk in file.Chunks)
                    {
                        if (!plainLengths.TryGetValue(chunk.Id, out var length) && !packed.TryGetValue(chunk.Id, out length))
                        {
                            complete = false;
                            if (!present.Contains(chunk.Id))
                                problems.Add($"{label}: file '{file.Path}' needs chunk {chunk.Id}, which is missing (no chunk object, and the release's pack index does not locate it)");
                        }
                        else if (length != chunk.Length)
                        {
                            complete = false;
                            problems.Add($"{label}: file '{file.Path}' expects chunk {chunk.Id} to hold {chunk.Length} bytes, its header says {length}");
                        }
                    }
                    if (contentKey is not null && complete)
                    {
                        filesDecrypted++;
                        if (DecryptedFileProblem(label, file, contentKey) is { } problem) problems.Add(problem);
                    }
                }
            }
            foreach (var channel in _store.EnumerateChannels(product))
            {
                try
                {
                    var pointer = ReadChannel(product, channel);
                    if (index.FindById(pointer.VersionId) is not { } listed || listed.Version != pointer.Version)
                        problems.Add($"channel {product}/{channel}: points at {pointer.Version} (id {pointer.VersionId}), which the index does not list");
                }
                catch (InvalidInputException ex) { problems.Add($"channel {product}/{channel}: {ex.Message}"); }
            }
        }
        foreach (var product in _store.EnumerateDeltaProducts())
            foreach (var path in _store.EnumerateDeltaManifests(product))
            {
                var bytes = _store.ReadFile(path);
                var signature = _store.ReadFile(StoreLayout.SignaturePathFor(path));
                if (bytes is null) continue;
                if (signature is null) { problems.Add($"delta {path}: signature file is missing"); continue; }
                if (publicKey is not null && !ManifestSigner.Verify(bytes, signature, publicKey))
                    problems.Add($"delta {path}: signature does not verify with the given public key");
                DeltaManifest delta;
                try { delta = DeltaManifestSerializer.Parse(bytes); }
                catch (InvalidInputException ex) { problems.Add($"delta {path}: {ex.Message}"); continue; }
                foreach (var file in delta.Files)
                    foreach (var part in file.Parts)
                        if (!present.Contains(part.Id)) problems.Add($"delta {path}: file '{file.Path}' needs patch object {part.Id}, which is missing");
            }
        return new VerifyReport(ids.Count, manifests, publicKey is not null, problems) { FilesDecrypted = filesDecrypted, ChunkPatchesRebuilt = patchesRebuilt };
    }

    /// <summary>Decrypts <paramref name="file"/> chunk by chunk; the first problem, or null when it is exactly what the manifest says.</summary>
    private string? DecryptedFileProblem(string label, ManifestFile file, ContentKey key)
    {
        _locator ??= new ChunkLocator(_store, reloadOnMiss: false);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = 0;
        foreach (var piece in file.Pieces())
        {
            var chunk = piece.Chunk;
            var stored = _locator.Read(chunk.Id);
            if (stored is null) return $"{label}: file '{file.Path}': chunk {chunk.Id} disappeared while verifying";
            byte[] plain;
            try { plain = ChunkCodec.Decode(stored, key, chunk.Length, chunk.Id); }
            catch (IntegrityException ex)
            {
                return $"{label}: file '{file.Path}': chunk {chunk.Id} does not decrypt with this content key ({ex.Message}); " +
                       "it was published with another key or is damaged";
            }
            if (ChunkCodec.ManifestTag(plain, key) != chunk.Tag)
                return $"{label}: file '{file.Path}': chunk {chunk.Id} decrypts, but its plaintext tag is not the manifest's {chunk.Tag}";
            sha.AppendData(plain, piece.ChunkOffset, piece.Length);
            size += piece.Length;
        }
        if (size != file.Size) return $"{label}: file '{file.Path}' decrypts to {size} bytes, the manifest says {file.Size}";
        var hash = Convert.ToHexStringLower(sha.GetHashAndReset());
        return hash == file.Sha256 ? null : $"{label}: file '{file.Path}' decrypts to SHA-256 {hash}, the manifest says {file.Sha256}";
    }

    /// <summary>
    /// Mark and sweep: drops versions outside <paramref name="policy"/> from their index (index first, then the
    /// files), deletes unlisted manifest leftovers and temp files, then deletes every chunk no retained manifest
    /// references. Throws <see cref="InvalidInputException"/> (having deleted nothing) if any retained manifest
    /// or index cannot be read.
    /// </summary>
    public GcReport CollectGarbage(GcPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.KeepLast is < 1)
            throw new InvalidInputException($"--keep-last {policy.KeepLast} is invalid: keep at least 1 version per product.");
        using var writerLock = _store.AcquireWriterLock();

        // Mark phase reads everything first, so a damaged manifest aborts before any deletion.
        var plans = new List<(string Product, ReleaseIndex Old, ReleaseIndex Kept, IReadOnlyList<ReleaseIndexEntry> Dropped)>();
        var marked = new HashSet<ChunkId>();
        var markedPacks = new HashSet<ChunkId>();
        var liveRanges = new HashSet<(ChunkId Pack, long Offset, int Stored)>();
        foreach (var product in _store.EnumerateProducts())
        {
            var index = ReadIndex(product);
            var pinned = _store.EnumerateChannels(product).Select(c => ReadChannel(product, c).VersionId).ToHashSet();
            var keep = index.Versions
                .Where((v, i) => policy.KeepLast is not { } n || i >= index.Versions.Count - n || pinned.Contains(v.VersionId))
                .ToList();
            foreach (var entry in keep)
            {
                var manifest = ReadManifest(entry);
                marked.UnionWith(manifest.DistinctChunks());
                if (_store.ReadFile(entry.ManifestPath) is { } bytes && PackIndex.ReadStored(_store, entry.ManifestPath, bytes, manifest) is { } packIndex)
                {
                    markedPacks.UnionWith(packIndex.Packs.Select(p => p.Id));
                    foreach (var e in packIndex.Entries) liveRanges.Add((packIndex.Packs[e.Pack].Id, e.Offset, e.Stored));
                }
                // A retained release's chunk patches stay with it (a base that was dropped only makes them unused).
                if (_store.ReadFile(entry.ManifestPath) is { } mbytes && ChunkPatchIndex.ReadStored(_store, entry.ManifestPath, mbytes, manifest) is { } patchIndex)
                {
                    markedPacks.UnionWith(patchIndex.Packs.Select(p => p.Id));
                    foreach (var e in patchIndex.Entries) liveRanges.Add((patchIndex.Packs[e.Pack].Id, e.Offset, e.Stored));
                }
            }
            plans.Add((product, index, index with { Versions = keep }, index.Versions.Except(keep).ToList()));
        }

        // Delta manifests are derived data: one whose both ends are retained keeps its patch objects; one that
        // names a dropped version, lacks its signature or does not parse (an interrupted build) goes.
        var keptVersions = plans.ToDictionary(p => p.Product, p => p.Kept.Versions.Select(v => v.Version).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var deltaFilesToDelete = new List<string>();
        foreach (var product in _store.EnumerateDeltaProducts())
        {
            foreach (var path in _store.EnumerateDeltaManifests(product))
            {
                var delta = TryReadDelta(path);
                var retained = delta is not null && keptVersions.TryGetValue(product, out var versions)
                    && delta.Product == product && versions.Contains(delta.From.Version) && versions.Contains(delta.To.Version)
                    && path == StoreLayout.DeltaManifestPath(product, delta.From.Version, delta.To.Version);
                if (retained) marked.UnionWith(delta!.DistinctObjects());
                else deltaFilesToDelete.AddRange([path, StoreLayout.SignaturePathFor(path)]);
            }
        }

        var removed = new List<string>();
        var manifestFilesDeleted = 0;
        foreach (var (product, old, kept, dropped) in plans)
        {
            removed.AddRange(dropped.Select(d => $"{product}/{d.Version}"));
            if (policy.DryRun) continue;
            if (dropped.Count > 0) _store.WriteFile(StoreLayout.IndexPath(product), kept.ToBytes());
            var keepFiles = kept.Versions.SelectMany(v => new[] { v.ManifestPath, StoreLayout.SignaturePathFor(v.ManifestPath), StoreLayout.PackIndexPathFor(v.ManifestPath), StoreLayout.ChunkPatchIndexPathFor(v.ManifestPath), StoreLayout.CompactManifestPath(v.ManifestPath) })
                .ToHashSet(StringComparer.Ordinal);
            // A manifest patch stays with its release even when its base is dropped: devices still running the dropped
            // release hold that base and fetch the patch.
            var patchPrefixes = kept.Versions.Select(v => v.ManifestPath[..^".json".Length] + ".from-").ToList();
            foreach (var file in _store.EnumerateManifestFiles(product))
                if (!keepFiles.Contains(file) && !patchPrefixes.Any(prefix => IsPatchOf(file, prefix)) && _store.DeleteFile(file)) manifestFilesDeleted++;
        }

        if (!policy.DryRun)
            foreach (var file in deltaFilesToDelete)
                if (_store.DeleteFile(file)) manifestFilesDeleted++;

        long deleted = 0, freed = 0, kept2 = 0;
        foreach (var id in _store.EnumerateChunks().ToList())
        {
            if (marked.Contains(id)) { kept2++; continue; }
            var size = _store.ChunkSize(id) ?? 0;
            if (!policy.DryRun && !_store.DeleteChunk(id)) continue;
            deleted++;
            freed += size;
        }
        // A pack goes only when no retained release's index locates any chunk in it. A partly live pack is kept whole:
        // cutting it would change the ranges the retained releases' signed indexes name (gc holds no signing key, and
        // devices resume ranges by offset), so its dead bytes stay until its last live chunk's releases are dropped.
        long packsDeleted = 0, partlyLive = 0, deadBytes = 0;
        var liveBytes = liveRanges.GroupBy(r => r.Pack).ToDictionary(g => g.Key, g => g.Sum(r => (long)r.Stored));
        foreach (var id in _store.EnumeratePacks().ToList())
        {
            if (markedPacks.Contains(id))
            {
                var dead = new FileInfo(_store.FullPath(StoreLayout.PackPath(id))).Length - liveBytes.GetValueOrDefault(id);
                if (dead > 0) { partlyLive++; deadBytes += dead; }
                continue;
            }
            var size = new FileInfo(_store.FullPath(StoreLayout.PackPath(id))).Length;
            if (!policy.DryRun && !_store.DeleteFile(StoreLayout.PackPath(id))) continue;
            packsDeleted++;
            freed += size;
        }
        // The publish cache only grows; entries of swept chunks are dead weight (and would be re-checked by every
        // publish). Keep the entries whose object is still there.
        var cache = PublishCache.Load(_store);
        var cacheDropped = cache.RemoveWhere(id => !marked.Contains(id));
        var temps = 0;
        if (!policy.DryRun)
        {
            if (cacheDropped > 0) _store.WriteFile(StoreLayout.PublishCacheFile, cache.ToBytes());
            foreach (var temp in _store.EnumerateTempFiles().ToList())
            {
                File.Delete(temp);
                temps++;
            }
            _store.Flush();
        }
        return new GcReport(removed, manifestFilesDeleted, deleted, freed, kept2, temps, policy.DryRun) { PublishCacheEntriesDropped = cacheDropped, PacksDeleted = packsDeleted,
            PacksPartlyLive = partlyLive, PackBytesUnreferenced = deadBytes };
    }

    /// <summary>
    /// Checks a release's pack index as an agent would (signature with <paramref name="publicKey"/> when given, strict
    /// parse, bound to the manifest bytes) and every located chunk: its pack present and hashing to its id, and the
    /// range hashing to the chunk id and carrying a valid header. Each located chunk that passes goes into
    /// <paramref name="packed"/> with its plaintext length. A release without an index has nothing to check (its chunks
    /// are fetched as objects).
    /// </summary>
    private List<string> PackProblems(string label, string manifestPath, byte[] manifestBytes, Manifest manifest, ReleasePublicKey? publicKey,
        Dictionary<ChunkId, int> packed)
    {
        var problems = new List<string>();
        var signed = _store.ReadFile(StoreLayout.PackIndexPathFor(manifestPath));
        if (signed is null) return problems;
        var order = PackIndex.ChunkOrder(manifest);
        var (index, refused) = ParsePackIndex(signed, manifestPath, manifestBytes, manifest, order.Count, publicKey);
        if (index is null)
        {
            problems.Add($"{label}: pack index refused ({refused}); agents fetch its chunks as objects");
            return problems;
        }
        var packs = new Dictionary<ChunkId, byte[]?>();
        foreach (var p in index.Packs)
        {
            var bytes = _store.ReadFile(StoreLayout.PackPath(p.Id));
            packs[p.Id] = bytes is not null && bytes.Length == p.Length && ChunkId.Of(bytes) == p.Id ? bytes : null;
            if (packs[p.Id] is null)
                problems.Add($"{label}: pack {p.Id} is {(bytes is null ? "missing" : "damaged (length or hash differs from its index entry)")}");
        }
        foreach (var (id, at) in index.Locate(order))
        {
            if (packs[at.Pack] is not { } pack) continue;
            var range = pack.AsSpan((int)at.Offset, at.Stored);
            if (!id.Matches(range))
            {
                problems.Add($"{label}: bytes {at.Offset}..{at.Offset + at.Stored - 1} of pack {at.Pack} do not hash to chunk {id}");
                continue;
            }
            try { packed[id] = ChunkCodec.ReadPlainLength(range); }
            catch (IntegrityException ex) { problems.Add($"{label}: chunk {id} in pack {at.Pack}: {ex.Message}"); }
        }
        return problems;
    }

    private (PackIndex? Index, string? Refused) ParsePackIndex(byte[] signed, string manifestPath, byte[] manifestBytes, Manifest manifest,
        int chunkCount, ReleasePublicKey? publicKey)
    {
        try
        {
            return publicKey is not null
                ? (PackIndex.VerifyAndParse(signed, publicKey, PackIndex.ManifestHashOf(manifestBytes), chunkCount), null)
                : (PackIndex.ReadStored(_store, manifestPath, manifestBytes, manifest), "it does not parse or belongs to other manifest bytes");
        }
        catch (Exception ex) when (ex is InvalidInputException or IntegrityException)
        {
            return (null, ex.Message);
        }
    }

    // "<prefix><digits>.zst": a manifest patch of the release whose path gives the prefix ("manifests/p/<v>.from-").
    private static bool IsPatchOf(string path, string prefix) =>
        path.Length > prefix.Length + 4 && path.StartsWith(prefix, StringComparison.Ordinal) && path.EndsWith(".zst", StringComparison.Ordinal)
        && path[prefix.Length..^4].All(char.IsAsciiDigit);

    /// <summary>
    /// Checks a release's compact manifests as an agent would use them: each decodes, within the manifest's length, to
    /// exactly the canonical manifest bytes (a patch against its base's). A patch whose base is no longer listed (gc keeps
    /// it for devices still on that release) can only be checked for the length its frame declares.
    /// </summary>
    private List<string> CompactManifestProblems(string label, ReleaseIndex index, ReleaseIndexEntry entry, byte[] manifestBytes)
    {
        var problems = new List<string>();
        var whole = StoreLayout.CompactManifestPath(entry.ManifestPath);
        var prefix = entry.ManifestPath[..^".json".Length] + ".from-";
        foreach (var path in _store.EnumerateManifestFiles(index.Product).Where(p => p == whole || (p.StartsWith(prefix, StringComparison.Ordinal) && p.EndsWith(".zst", StringComparison.Ordinal))))
        {
            var reference = Array.Empty<byte>();
            if (path != whole)
            {
                var id = path[prefix.Length..^".zst".Length];
                // Not a number: the patch of another version whose name continues with ".from-…", checked with that version.
                if (!long.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var baseId)) continue;
                if (baseId == 0 || path != StoreLayout.ManifestPatchPath(entry.ManifestPath, baseId))
                {
                    problems.Add($"{label}: {path} is not a manifest patch name (<version>.from-<versionId>.zst); delete it");
                    continue;
                }
                var baseEntry = index.FindById(baseId);
                if (baseEntry is null)
                {
                    if (_store.ReadFile(path) is { } orphan && CompactManifest.DeclaredLength(orphan) != manifestBytes.Length)
                        problems.Add($"{label}: {path} (against version ID {baseId}, no longer listed) declares {CompactManifest.DeclaredLength(orphan)?.ToString() ?? "no"} bytes, the manifest has {manifestBytes.Length}; delete it (devices then fetch the JSON)");
                    continue;
                }
                if (_store.ReadFile(baseEntry.ManifestPath) is not { } baseBytes) continue; // reported as that release's missing manifest
                reference = baseBytes;
            }
            var encoded = _store.ReadFile(path);
            if (encoded is null) continue;
            try
            {
                if (!CompactManifest.Decode(reference, encoded, manifestBytes.Length).AsSpan().SequenceEqual(manifestBytes))
                    problems.Add($"{label}: {path} decodes to other bytes than {entry.ManifestPath}; delete it (devices then fetch the JSON) or publish again");
            }
            catch (IntegrityException ex)
            {
                problems.Add($"{label}: {path} does not decode to {entry.ManifestPath} ({ex.Message}); delete it (devices then fetch the JSON)");
            }
        }
        return problems;
    }

    private DeltaManifest? TryReadDelta(string path)
    {
        var bytes = _store.ReadFile(path);
        if (bytes is null || !_store.FileExists(StoreLayout.SignaturePathFor(path))) return null;
        try { return DeltaManifestSerializer.Parse(bytes); }
        catch (InvalidInputException) { return null; }
    }

    private ReleaseIndex ReadIndex(string product)
    {
        var bytes = _store.ReadFile(StoreLayout.IndexPath(product));
        if (bytes is null) return new ReleaseIndex(product, []);
        var index = ReleaseIndex.Parse(bytes);
        if (index.Product != product)
            throw new InvalidInputException($"Release index of '{product}' names product '{index.Product}': repair {StoreLayout.IndexPath(product)}.");
        return index;
    }

    private Manifest ReadManifest(ReleaseIndexEntry entry)
    {
        var bytes = _store.ReadFile(entry.ManifestPath)
            ?? throw new InvalidInputException($"Manifest {entry.ManifestPath} is listed in its index but missing: run 'orch store verify' and restore it from a backup.");
        try
        {
            return ManifestSerializer.Parse(bytes);
        }
        catch (InvalidInputException ex)
        {
            throw new InvalidInputException($"Manifest {entry.ManifestPath} cannot be read ({ex.Message}): run 'orch store verify'; nothing was deleted.", ex);
        }
    }

    private ChannelPointer ReadChannel(string product, string channel)
    {
        var bytes = _store.ReadFile(StoreLayout.ChannelPath(product, channel))
            ?? throw new InvalidInputException($"Channel {product}/{channel} disappeared while reading.");
        return ChannelPointer.Parse(bytes);
    }
}
