using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>Where a release's chunks lie in packs, before the index is bound to the manifest's bytes.</summary>
/// <param name="Packs">Packs the release's entries refer to (new ones and ones an earlier release wrote).</param>
/// <param name="Entries">One entry per distinct chunk of the release, by chunk ordinal.</param>
/// <param name="PacksNew">Packs written by this run.</param>
/// <param name="BytesNew">Bytes of the packs written by this run.</param>
public sealed record ReleasePacks(IReadOnlyList<PackInfo> Packs, IReadOnlyList<PackEntry> Entries, int PacksNew, long BytesNew)
{
    /// <summary>The signed index of these packs for the manifest with exactly <paramref name="manifestBytes"/>.</summary>
    public byte[] SignedIndex(ReadOnlySpan<byte> manifestBytes, Keys.ReleaseSigningKey key) =>
        new PackIndex(PackIndex.ManifestHashOf(manifestBytes), Packs, Entries).SerializeSigned(key);
}

/// <summary>
/// Writes the pack objects of a release at publish time: every distinct chunk of the release that the previous
/// release's pack index does not already locate is appended, in manifest order, to new packs of at most
/// <see cref="PackIndex.MaxPackBytes"/>; chunks the previous release located keep their place. So the chunks new in a
/// release lie contiguous in its own packs, and a device one release behind fetches them in a few Range requests.
/// </summary>
public static class ReleasePacker
{
    /// <summary>Packs <paramref name="chunkOrder"/> (the release's distinct chunks, <see cref="PackIndex.ChunkOrder"/>).</summary>
    /// <param name="store">The store holding every chunk object of the release (already written).</param>
    /// <param name="chunkOrder">Distinct chunk ids in manifest order.</param>
    /// <param name="previousManifestPath">Manifest path of the product's latest listed release, or null for the first.</param>
    /// <param name="maxPackBytes">Largest pack (tests use smaller packs).</param>
    public static ReleasePacks Pack(IContentStore store, IReadOnlyList<ChunkId> chunkOrder, string? previousManifestPath, long maxPackBytes = PackIndex.MaxPackBytes)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(chunkOrder);
        var (previous, previousPacks) = previousManifestPath is null
            ? (new Dictionary<ChunkId, PackedChunk>(), new Dictionary<ChunkId, PackInfo>())
            : Previous(store, previousManifestPath);
        var packs = new List<PackInfo>();
        var packOrdinal = new Dictionary<ChunkId, int>();
        var entries = new List<PackEntry>(chunkOrder.Count);
        var packsNew = 0;
        long bytesNew = 0;
        using var current = new MemoryStream();
        var pending = new List<(int Chunk, long Offset, int Stored)>();

        void Finish()
        {
            if (current.Length == 0) return;
            var bytes = current.GetBuffer().AsSpan(0, (int)current.Length);
            var id = ChunkId.Of(bytes);
            if (!store.FileExists(StoreLayout.PackPath(id))) store.WriteFile(StoreLayout.PackPath(id), bytes);
            var ordinal = OrdinalOf(new PackInfo(id, current.Length));
            foreach (var (chunk, offset, stored) in pending) entries.Add(new PackEntry(chunk, ordinal, offset, stored));
            packsNew++;
            bytesNew += current.Length;
            pending.Clear();
            current.SetLength(0);
        }

        int OrdinalOf(PackInfo pack)
        {
            if (packOrdinal.TryGetValue(pack.Id, out var ordinal)) return ordinal;
            packs.Add(pack);
            return packOrdinal[pack.Id] = packs.Count - 1;
        }

        for (var i = 0; i < chunkOrder.Count; i++)
        {
            if (previous.TryGetValue(chunkOrder[i], out var placed))
            {
                entries.Add(new PackEntry(i, OrdinalOf(previousPacks[placed.Pack]), placed.Offset, placed.Stored));
                continue;
            }
            var stored = store.ReadChunk(chunkOrder[i])
                ?? throw new InvalidInputException($"Chunk {chunkOrder[i]} of the release is missing from the store; run 'orch store verify'.");
            if (current.Length > 0 && current.Length + stored.Length > maxPackBytes) Finish();
            pending.Add((i, current.Length, stored.Length));
            current.Write(stored);
        }
        Finish();
        entries.Sort((a, b) => a.Chunk.CompareTo(b.Chunk));
        return new ReleasePacks(packs, entries, packsNew, bytesNew);
    }

    /// <summary>
    /// The previous release's located chunks, when its pack index belongs to its manifest and every pack it names is
    /// stored; otherwise nothing (its chunks are packed again: costs store bytes, never correctness).
    /// </summary>
    private static (Dictionary<ChunkId, PackedChunk>, Dictionary<ChunkId, PackInfo>) Previous(IContentStore store, string manifestPath)
    {
        var none = (new Dictionary<ChunkId, PackedChunk>(), new Dictionary<ChunkId, PackInfo>());
        if (store.ReadFile(manifestPath) is not { } manifestBytes) return none;
        Manifest manifest;
        try { manifest = ManifestSerializer.Parse(manifestBytes); }
        catch (InvalidInputException) { return none; }
        if (PackIndex.ReadStored(store, manifestPath, manifestBytes, manifest) is not { } index
            || index.Packs.Any(p => !store.FileExists(StoreLayout.PackPath(p.Id)))) return none;
        return (index.Locate(PackIndex.ChunkOrder(manifest)), index.Packs.ToDictionary(p => p.Id));
    }
}
