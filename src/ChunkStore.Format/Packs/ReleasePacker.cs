using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>Where a release's chunks lie in packs, before the index is bound to the manifest's bytes.</summary>
/// <param name="Packs">Packs the release's entries refer to (new ones and ones an earlier release wrote).</param>
/// <param name="Entries">One entry per packed distinct chunk of the release, by chunk ordinal; chunks stored as objects have none.</param>
public sealed record ReleasePacks(IReadOnlyList<PackInfo> Packs, IReadOnlyList<PackEntry> Entries)
{
    /// <summary>The signed index of these packs for the manifest with exactly <paramref name="manifestBytes"/>.</summary>
    public byte[] SignedIndex(ReadOnlySpan<byte> manifestBytes, Keys.ReleaseSigningKey key) =>
        new PackIndex(PackIndex.ManifestHashOf(manifestBytes), Packs, Entries).SerializeSigned(key);
}

/// <summary>
/// Appends the chunk objects a publish encodes to pack objects of at most <see cref="PackIndex.MaxPackBytes"/> in
/// manifest order: the store's only copy of them, so a release's new chunks lie contiguous in its own packs and a device
/// one release behind fetches them in a few Range requests. Encode workers finish chunks slightly out of order; each
/// chunk is offered with its sequence number (every chunk of the release once, new or not) and appended when all before
/// it were offered, so pack contents and ids do not depend on thread timing. Each full pack is written with
/// <see cref="IContentStore.PutObjectIfAbsent"/> (temp + rename; durable at the store's flush, which precedes the
/// manifest). Thread-safe. Memory: the pack being filled plus the chunks offered ahead of a slower worker.
/// </summary>
public sealed class PackWriter(IContentStore store, long maxPackBytes = PackIndex.MaxPackBytes)
{
    private readonly Lock _gate = new();
    private readonly MemoryStream _current = new();
    private readonly List<(ChunkId Chunk, long Offset, int Stored)> _pending = [];
    private readonly HashSet<ChunkId> _pendingIds = [];
    private readonly Dictionary<ChunkId, PackedChunk> _written = [];
    private readonly List<PackInfo> _packs = [];
    private readonly SortedDictionary<long, (ChunkId Id, byte[]? Stored)> _ahead = [];
    private long _next;

    /// <summary>Chunks written so far (those of the pack being filled appear at <see cref="Complete"/>).</summary>
    public IReadOnlyDictionary<ChunkId, PackedChunk> Written => _written;

    /// <summary>Packs written so far.</summary>
    public IReadOnlyList<PackInfo> Packs => _packs;

    /// <summary>
    /// Offers chunk number <paramref name="sequence"/> (0, 1, 2 ... in manifest order): <paramref name="stored"/> is its
    /// chunk object to append, or null when it is not to be packed (held already, or a repeat).
    /// </summary>
    public void Offer(long sequence, ChunkId id, ReadOnlySpan<byte> stored, bool append)
    {
        lock (_gate)
        {
            if (sequence != _next)
            {
                _ahead[sequence] = (id, append ? stored.ToArray() : null);
                return;
            }
            if (append) Append(id, stored);
            _next++;
            while (_ahead.Remove(_next, out var next))
            {
                if (next.Stored is not null) Append(next.Id, next.Stored);
                _next++;
            }
        }
    }

    /// <summary>Appends what is still waiting (only after a failed run can a number be missing) and writes the pack being filled.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            foreach (var (_, waiting) in _ahead)
                if (waiting.Stored is not null) Append(waiting.Id, waiting.Stored);
            _ahead.Clear();
            FinishPack();
        }
    }

    private void Append(ChunkId id, ReadOnlySpan<byte> stored)
    {
        if (_written.ContainsKey(id) || !_pendingIds.Add(id)) return;
        if (_current.Length > 0 && _current.Length + stored.Length > maxPackBytes)
        {
            _pendingIds.Remove(id);
            FinishPack();
            _pendingIds.Add(id);
        }
        _pending.Add((id, _current.Length, stored.Length));
        _current.Write(stored);
    }

    private void FinishPack()
    {
        if (_current.Length == 0) return;
        var bytes = _current.GetBuffer().AsSpan(0, (int)_current.Length);
        var id = ChunkId.Of(bytes);
        store.PutObjectIfAbsent(StoreLayout.PackPath(id), bytes);
        _packs.Add(new PackInfo(id, _current.Length));
        foreach (var (chunk, offset, stored) in _pending) _written[chunk] = new PackedChunk(chunk, id, offset, stored);
        _pending.Clear();
        _pendingIds.Clear();
        _current.SetLength(0);
    }
}

/// <summary>
/// Builds a release's pack index: every distinct chunk the store holds only in a pack gets an entry (the pack the
/// previous release of the product located it in first, for locality, else where <see cref="ChunkLocator"/> finds it);
/// chunks the store holds as objects get none, and devices fetch those as objects.
/// </summary>
public static class ReleasePacker
{
    /// <summary>The index entries for <paramref name="chunkOrder"/> (the release's distinct chunks, <see cref="PackIndex.ChunkOrder"/>).</summary>
    /// <param name="store">The store (chunks already written).</param>
    /// <param name="chunkOrder">Distinct chunk ids in manifest order.</param>
    /// <param name="locator">Where the store holds chunks, including those this publish wrote (<see cref="ChunkLocator.Add"/>).</param>
    /// <param name="previousManifestPath">Manifest path of the product's latest listed release, or null for the first.</param>
    public static ReleasePacks Index(IContentStore store, IReadOnlyList<ChunkId> chunkOrder, ChunkLocator locator, string? previousManifestPath)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(chunkOrder);
        ArgumentNullException.ThrowIfNull(locator);
        var previous = previousManifestPath is null ? [] : Previous(store, previousManifestPath);
        var packs = new List<PackInfo>();
        var packOrdinal = new Dictionary<ChunkId, int>();
        var entries = new List<PackEntry>(chunkOrder.Count);
        for (var i = 0; i < chunkOrder.Count; i++)
        {
            var id = chunkOrder[i];
            if (store.ChunkExists(id)) continue;
            var at = previous.TryGetValue(id, out var placed) ? placed
                : locator.LocateInPack(id) ?? throw new InvalidInputException($"Chunk {id} of the release is missing from the store; run 'orch store verify'.");
            if (!packOrdinal.TryGetValue(at.Pack, out var ordinal))
            {
                var length = locator.PackLength(at.Pack) ?? throw new InvalidInputException($"Pack {at.Pack} holding chunk {id} is not named by any pack index; run 'orch store verify'.");
                packs.Add(new PackInfo(at.Pack, length));
                ordinal = packOrdinal[at.Pack] = packs.Count - 1;
            }
            entries.Add(new PackEntry(i, ordinal, at.Offset, at.Stored));
        }
        return new ReleasePacks(packs, entries);
    }

    /// <summary>
    /// The previous release's located chunks, when its pack index belongs to its manifest and every pack it names is
    /// stored; otherwise nothing (the locator's places are used).
    /// </summary>
    private static Dictionary<ChunkId, PackedChunk> Previous(IContentStore store, string manifestPath)
    {
        if (store.ReadFile(manifestPath) is not { } manifestBytes) return [];
        Manifest manifest;
        try { manifest = ManifestSerializer.Parse(manifestBytes); }
        catch (InvalidInputException) { return []; }
        if (PackIndex.ReadStored(store, manifestPath, manifestBytes, manifest) is not { } index
            || index.Packs.Any(p => !store.FileExists(StoreLayout.PackPath(p.Id)))) return [];
        return index.Locate(PackIndex.ChunkOrder(manifest));
    }
}
