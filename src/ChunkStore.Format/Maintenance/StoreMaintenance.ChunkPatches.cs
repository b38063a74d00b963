using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Maintenance;

public sealed partial class StoreMaintenance
{
    /// <summary>Manifests of the products verified so far by SHA-256 of their exact bytes: where a chunk patch's base release is found.</summary>
    private readonly Dictionary<string, Dictionary<string, Manifest>> _manifestsBySha = new(StringComparer.Ordinal);

    /// <summary>
    /// Checks a release's chunk patch index as an agent would (signature with <paramref name="publicKey"/> when given,
    /// strict parse, bound to the manifest bytes), every pack it names (present, hashing to its id) and every patch
    /// range (hashing to the patch object's id, a header whose plaintext length is the entry's). With
    /// <paramref name="contentKey"/> each patch is also decrypted and applied to its region of the base file, rebuilt
    /// from the base release's chunks, and must give exactly the chunk's length and keyed tag: a patch that a device
    /// would refuse (and fetch the chunk for instead) is a problem of the store, not of the device. A base release no
    /// longer in the store leaves the rebuild unchecked: devices that still hold its files can use the patches.
    /// </summary>
    private List<string> ChunkPatchProblems(string label, ReleaseIndex index, string manifestPath, byte[] manifestBytes, Manifest manifest,
        ReleasePublicKey? publicKey, ContentKey? contentKey, ref long rebuilt)
    {
        var problems = new List<string>();
        var signed = _store.ReadFile(StoreLayout.ChunkPatchIndexPathFor(manifestPath));
        if (signed is null) return problems;
        var order = PackIndex.ChunkOrder(manifest);
        ChunkPatchIndex? patches;
        string refused = "it does not parse or belongs to other manifest bytes";
        try
        {
            patches = publicKey is not null
                ? ChunkPatchIndex.VerifyAndParse(signed, publicKey, PackIndex.ManifestHashOf(manifestBytes), order.Count)
                : ChunkPatchIndex.ReadStored(_store, manifestPath, manifestBytes, manifest);
        }
        catch (Exception ex) when (ex is InvalidInputException or IntegrityException)
        {
            (patches, refused) = (null, ex.Message);
        }
        if (patches is null)
        {
            problems.Add($"{label}: chunk patch index refused ({refused}); agents fetch those chunks whole: rebuild it with 'orch release chunk-patches'");
            return problems;
        }

        var packs = new Dictionary<ChunkId, bool>();
        foreach (var p in patches.Packs)
        {
            var file = new FileInfo(_store.FullPath(StoreLayout.PackPath(p.Id)));
            long? length = file.Exists ? file.Length : null;
            var bytes = length == p.Length ? _store.ReadFile(StoreLayout.PackPath(p.Id)) : null;
            packs[p.Id] = bytes is not null && ChunkId.Of(bytes) == p.Id;
            if (!packs[p.Id])
                problems.Add($"{label}: chunk patch pack {p.Id} is {(length is null ? "missing" : "damaged (length or hash differs from its index entry)")}");
        }

        var chunks = new Dictionary<ChunkId, ChunkRef>();
        foreach (var file in manifest.Files)
            foreach (var chunk in file.Chunks)
                chunks.TryAdd(chunk.Id, chunk);
        var baseManifest = contentKey is null ? null : BaseManifest(index, patches.BaseManifestSha256);
        foreach (var (id, p) in patches.Resolve(order))
        {
            if (!packs[p.Patch.Pack]) continue;
            var where = $"{label}: chunk patch for chunk {id}";
            var stored = _store.ReadFileRange(StoreLayout.PackPath(p.Patch.Pack), p.Patch.Offset, p.Patch.Stored);
            if (stored is null || !p.Patch.Chunk.Matches(stored))
            {
                problems.Add($"{where}: bytes {p.Patch.Offset}..{p.Patch.Offset + p.Patch.Stored - 1} of pack {p.Patch.Pack} do not hash to patch object {p.Patch.Chunk}");
                continue;
            }
            try
            {
                var plainLength = ChunkCodec.ReadPlainLength(stored);
                if (plainLength != p.PatchLength)
                {
                    problems.Add($"{where}: patch object header says {plainLength} bytes, the index says {p.PatchLength}");
                    continue;
                }
                if (contentKey is null || baseManifest is null) continue;
                if (RebuiltChunkProblem(baseManifest, p, stored, chunks[id], contentKey) is { } problem) problems.Add($"{where}: {problem}");
                else rebuilt++;
            }
            catch (IntegrityException ex)
            {
                problems.Add($"{where}: {ex.Message}");
            }
        }
        return problems;
    }

    /// <summary>Applies one patch to its base region and compares the result with the manifest's chunk; the problem, or null.</summary>
    private string? RebuiltChunkProblem(Manifest baseManifest, PatchedChunk p, byte[] stored, ChunkRef chunk, ContentKey key)
    {
        var baseFile = baseManifest.Files.FirstOrDefault(f => f.Sha256 == p.BaseSha256);
        if (baseFile is null) return $"its base file {p.BaseSha256} is not in the base release {baseManifest.Version}";
        if (p.BaseOffset + p.BaseLength > baseFile.Size)
            return $"its base region {p.BaseOffset}+{p.BaseLength} lies outside base file '{baseFile.Path}' ({baseFile.Size} bytes)";
        var region = ReadPlainRange(baseFile, p.BaseOffset, p.BaseLength, key, out var unreadable);
        if (region is null) return $"base file '{baseFile.Path}' of release {baseManifest.Version} cannot be read ({unreadable})";
        byte[] plain;
        try
        {
            plain = PatchCodec.Apply(region, ChunkCodec.Decode(stored, key, p.PatchLength, p.Patch.Chunk), chunk.Length, ChunkPatchIndex.WindowLog);
        }
        catch (IntegrityException ex)
        {
            return $"does not decrypt or apply with this content key ({ex.Message})";
        }
        return ChunkCodec.ManifestTag(plain, key) == chunk.Tag ? null : $"rebuilds bytes whose tag is not the manifest's {chunk.Tag}";
    }

    /// <summary>Bytes <paramref name="offset"/>..+<paramref name="length"/> of a file, decrypting only the chunks that overlap them.</summary>
    private byte[]? ReadPlainRange(ManifestFile file, long offset, int length, ContentKey key, out string? problem)
    {
        _locator ??= new ChunkLocator(_store, reloadOnMiss: false);
        var region = new byte[length];
        foreach (var piece in file.Pieces())
        {
            var chunk = piece.Chunk;
            var at = piece.FileOffset;
            var end = at + piece.Length;
            if (end > offset && at < offset + length)
            {
                var storedChunk = _locator.Read(chunk.Id);
                if (storedChunk is null) { problem = $"chunk {chunk.Id} is missing"; return null; }
                byte[] plain;
                try { plain = ChunkCodec.Decode(storedChunk, key, chunk.Length, chunk.Id); }
                catch (IntegrityException ex) { problem = $"chunk {chunk.Id}: {ex.Message}"; return null; }
                var from = Math.Max(at, offset);
                var to = Math.Min(end, offset + length);
                plain.AsSpan(piece.ChunkOffset + (int)(from - at), (int)(to - from)).CopyTo(region.AsSpan((int)(from - offset)));
            }
        }
        problem = null;
        return region;
    }

    /// <summary>The listed release of the product whose manifest bytes hash to <paramref name="sha256"/>, or null.</summary>
    private Manifest? BaseManifest(ReleaseIndex index, string sha256)
    {
        if (!_manifestsBySha.TryGetValue(index.Product, out var bySha))
        {
            bySha = new Dictionary<string, Manifest>(StringComparer.Ordinal);
            foreach (var entry in index.Versions)
            {
                if (_store.ReadFile(entry.ManifestPath) is not { } bytes) continue;
                try { bySha[PackIndex.ManifestHashOf(bytes)] = ManifestSerializer.Parse(bytes); }
                catch (InvalidInputException) { }
            }
            _manifestsBySha[index.Product] = bySha;
        }
        return bySha.GetValueOrDefault(sha256);
    }
}
