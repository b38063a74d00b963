using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>
/// Where the store holds a chunk: its own object (<c>chunks/ab/&lt;id&gt;</c>) when <see cref="Pack"/> is null, else
/// <see cref="Stored"/> bytes at <see cref="Offset"/> of that pack object.
/// </summary>
/// <param name="Chunk">Chunk object id.</param>
/// <param name="Pack">Pack holding it, or null for a chunk object.</param>
/// <param name="Offset">First byte in the pack (0 for an object).</param>
/// <param name="Stored">Stored length in the pack (0 for an object: the file's length).</param>
public readonly record struct ChunkLocation(ChunkId Chunk, ChunkId? Pack, long Offset, int Stored);

/// <summary>
/// The one place every store reader asks where a chunk is (docs/store-format.md, "Packs"): a chunk object first, else
/// a range of a pack object that some stored pack index locates. Publishing, gc and verify, the delta builder, the
/// publish cache and the node's chunk serving all read chunks through it, so a store whose chunks live only in packs,
/// only as objects (published before packs), or both, serves every chunk the same way.
/// <para>
/// The pack map is built from every signed pack index in the store (read without signature checks: the store's own
/// tools and node trust the store folder, and every range read is checked against the chunk id). A miss lists the
/// pack indexes again, so a release published after the locator was built is found; misses that wait while another
/// thread lists take that listing's answer instead of listing once each, and only indexes not seen before are parsed.
/// A range that does not hold its chunk (a pack gc deleted, a damaged pack) re-reads the indexes naming that pack at
/// most once per <c>staleRangeRecheck</c>, so a client asking again and again for a damaged chunk cannot make the
/// node parse manifests per request. Thread-safe.
/// </para>
/// </summary>
public sealed class ChunkLocator
{
    /// <summary>Default for how often a range that failed its check may re-read the indexes naming its pack.</summary>
    public static readonly TimeSpan DefaultStaleRangeRecheck = TimeSpan.FromSeconds(1);

    private readonly IContentStore _store;
    private readonly Lock _gate = new();
    private readonly bool _reloadOnMiss;
    private readonly TimeSpan _staleRangeRecheck;
    private readonly TimeProvider _clock;
    private readonly Dictionary<string, LoadedIndex?> _byFile = new(StringComparer.Ordinal);
    private Dictionary<ChunkId, PackedChunk> _packed = [];
    private Dictionary<ChunkId, long> _packLengths = [];
    private string[] _indexFiles = [];
    private bool _current;
    private long _listings;
    private long _lastStaleRecheck = long.MinValue;

    /// <summary>A locator over <paramref name="store"/>; the pack map is loaded on the first lookup that needs it.</summary>
    /// <param name="store">The store.</param>
    /// <param name="reloadOnMiss">Look for new pack indexes on every miss (a serving node, whose store others publish
    /// into); false for a writer holding the store lock, whose indexes cannot change underneath it.</param>
    /// <param name="staleRangeRecheck">Least time between two re-reads caused by ranges that failed their check;
    /// <see cref="DefaultStaleRangeRecheck"/> when null.</param>
    /// <param name="clock">Time source of that bound (tests step it); the system clock when null.</param>
    public ChunkLocator(IContentStore store, bool reloadOnMiss = true, TimeSpan? staleRangeRecheck = null, TimeProvider? clock = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _reloadOnMiss = reloadOnMiss;
        _staleRangeRecheck = staleRangeRecheck ?? DefaultStaleRangeRecheck;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>How many times the pack indexes were listed (each miss that found the map current costs one).</summary>
    public long Listings => Interlocked.Read(ref _listings);

    /// <summary>How many pack index files were read and parsed so far (first loads and stale-range re-reads).</summary>
    public long IndexLoads { get; private set; }

    /// <summary>True when the chunk is stored as an object or inside a located pack.</summary>
    public bool Contains(ChunkId id) => _store.ChunkExists(id) || LocateInPack(id) is not null;

    /// <summary>Where the chunk is, or null when the store holds it nowhere.</summary>
    public ChunkLocation? Locate(ChunkId id)
    {
        if (_store.ChunkExists(id)) return new ChunkLocation(id, null, 0, 0);
        return LocateInPack(id) is { } p ? new ChunkLocation(id, p.Pack, p.Offset, p.Stored) : null;
    }

    /// <summary>The pack range holding the chunk according to the store's pack indexes, or null.</summary>
    public PackedChunk? LocateInPack(ChunkId id)
    {
        var listingsBefore = Listings;
        lock (_gate)
        {
            if (_packed.TryGetValue(id, out var hit)) return hit;
            // A listing that began after this miss did (listings run under the gate, so it has finished) already
            // reflects the store as of this miss, so listing again would only repeat it.
            if (_current && Listings != listingsBefore) return null;
            if (!ReloadIfChanged()) return null;
            return _packed.TryGetValue(id, out hit) ? hit : null;
        }
    }

    /// <summary>Length of a pack a loaded index names, or null.</summary>
    public long? PackLength(ChunkId pack)
    {
        lock (_gate)
        {
            if (_packLengths.TryGetValue(pack, out var l)) return l;
            return ReloadIfChanged() && _packLengths.TryGetValue(pack, out l) ? l : null;
        }
    }

    /// <summary>
    /// The stored chunk object's bytes (its own object, or its range of a pack, checked against the id), or null when
    /// the store holds it nowhere intact.
    /// </summary>
    public byte[]? Read(ChunkId id)
    {
        if (_store.ReadChunk(id) is { } own) return own;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            if (LocateInPack(id) is not { } at) return null;
            var bytes = _store.ReadFileRange(StoreLayout.PackPath(at.Pack), at.Offset, at.Stored);
            if (bytes is not null && id.Matches(bytes)) return bytes;
            // The pack went (gc) or another index locates the chunk too: re-read the indexes naming this pack.
            if (!RecheckPack(at.Pack)) return null;
        }
        return null;
    }

    /// <summary>Stored length of the chunk (object file or pack range), or null when absent.</summary>
    public long? StoredLength(ChunkId id)
    {
        if (_store is FileSystemStore fs && fs.ChunkSize(id) is { } size) return size;
        if (_store is not FileSystemStore && _store.ReadChunk(id) is { } own) return own.Length;
        return LocateInPack(id)?.Stored;
    }

    /// <summary>Records chunks just written into packs, so lookups see them before their index is stored.</summary>
    public void Add(IEnumerable<PackedChunk> chunks, IEnumerable<PackInfo> packs)
    {
        lock (_gate)
        {
            ReloadIfChanged(); // a later reload must not be the first, or it would replace what is added here
            foreach (var p in packs) _packLengths[p.Id] = p.Length;
            foreach (var c in chunks) _packed.TryAdd(c.Chunk, c);
        }
    }

    /// <summary>Forgets the indexes naming <paramref name="pack"/> and reads them again; false when one did so too recently.</summary>
    private bool RecheckPack(ChunkId pack)
    {
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            if (_lastStaleRecheck != long.MinValue && _clock.GetElapsedTime(_lastStaleRecheck, now) < _staleRangeRecheck) return false;
            _lastStaleRecheck = now;
            var naming = _byFile.Where(e => e.Value is { } l && l.Index.Packs.Any(p => p.Id == pack)).Select(e => e.Key).ToList();
            foreach (var file in naming) _byFile.Remove(file);
            _current = false;
            ReloadIfChanged(rebuild: true);
            return true;
        }
    }

    private bool ReloadIfChanged(bool rebuild = false)
    {
        if (_current && !_reloadOnMiss) return false;
        // Counted before listing: a miss that sees the count move started waiting before this listing began.
        Interlocked.Increment(ref _listings);
        var files = _store.EnumeratePackIndexFiles().Order(StringComparer.Ordinal).ToArray();
        if (_current && files.AsSpan().SequenceEqual(_indexFiles)) return false;
        var listed = files.ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _byFile.Keys.Where(f => !listed.Contains(f)).ToList())
        {
            _byFile.Remove(gone);
            rebuild = true;
        }
        var added = new List<LoadedIndex>();
        foreach (var file in files)
        {
            if (_byFile.ContainsKey(file)) continue;
            var loaded = Load(file);
            IndexLoads++;
            _byFile[file] = loaded;
            if (loaded is not null) added.Add(loaded);
        }
        if (rebuild || !_current)
        {
            // A chunk several indexes locate keeps the location of the first index in path order, as on every rebuild.
            _packed = [];
            _packLengths = [];
            foreach (var file in files)
                if (_byFile[file] is { } l) Merge(l);
        }
        else
        {
            foreach (var l in added) Merge(l);
        }
        _indexFiles = files;
        _current = true;
        return true;
    }

    private void Merge(LoadedIndex loaded)
    {
        foreach (var p in loaded.Index.Packs) _packLengths[p.Id] = p.Length;
        foreach (var (id, at) in loaded.Located) _packed.TryAdd(id, at);
    }

    private sealed record LoadedIndex(PackIndex Index, Dictionary<ChunkId, PackedChunk> Located);

    /// <summary>The index at <paramref name="packIndexPath"/> resolved against its manifest, or null when either is unreadable or they do not belong together.</summary>
    private LoadedIndex? Load(string packIndexPath)
    {
        var manifestPath = packIndexPath[..^StoreLayout.PackIndexSuffix.Length] + ".json";
        if (_store.ReadFile(manifestPath) is not { } manifestBytes) return null;
        Manifest manifest;
        try { manifest = ManifestSerializer.Parse(manifestBytes); }
        catch (InvalidInputException) { return null; }
        if (PackIndex.ReadStored(_store, manifestPath, manifestBytes, manifest) is not { } index) return null;
        // A pack that is gone (a damaged store) locates nothing, so a publish stores those chunks again instead of
        // naming the missing pack in a new index.
        var present = index.Packs.Where(p => _store.FileExists(StoreLayout.PackPath(p.Id))).Select(p => p.Id).ToHashSet();
        var located = index.Locate(PackIndex.ChunkOrder(manifest));
        foreach (var (id, at) in located.ToList())
            if (!present.Contains(at.Pack)) located.Remove(id);
        return new LoadedIndex(index, located);
    }
}
