namespace Orchestrator.ChunkStore.Actors;

/// <summary>
/// Least-recently-used cache of chunk bytes bounded by total bytes. Owned by one actor, so not thread-safe.
/// A chunk larger than the whole budget is never cached (it would evict everything for one request).
/// </summary>
public sealed class ChunkLru
{
    private readonly long _capacityBytes;
    private readonly Dictionary<string, LinkedListNode<(string Id, byte[] Data)>> _index = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Id, byte[] Data)> _order = new();

    /// <summary>Creates a cache holding at most <paramref name="capacityBytes"/> bytes of chunk data.</summary>
    public ChunkLru(long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        _capacityBytes = capacityBytes;
    }

    /// <summary>Bytes currently held.</summary>
    public long SizeBytes { get; private set; }

    /// <summary>Number of chunks currently held.</summary>
    public int Count => _index.Count;

    /// <summary>Looks a chunk up and marks it most recently used.</summary>
    public bool TryGet(string id, out byte[] data)
    {
        if (_index.TryGetValue(id, out var node))
        {
            _order.Remove(node);
            _order.AddFirst(node);
            data = node.Value.Data;
            return true;
        }
        data = [];
        return false;
    }

    /// <summary>Adds (or refreshes) a chunk, evicting least recently used chunks until it fits.</summary>
    public void Add(string id, byte[] data)
    {
        if (data.Length > _capacityBytes) return;
        if (_index.TryGetValue(id, out var existing))
        {
            _order.Remove(existing);
            _order.AddFirst(existing);
            return;
        }
        while (SizeBytes + data.Length > _capacityBytes && _order.Last is { } last)
        {
            _order.RemoveLast();
            _index.Remove(last.Value.Id);
            SizeBytes -= last.Value.Data.Length;
        }
        _index[id] = _order.AddFirst((id, data));
        SizeBytes += data.Length;
    }

    /// <summary>Drops a chunk (after deletion from the backend).</summary>
    public void Remove(string id)
    {
        if (_index.Remove(id, out var node))
        {
            _order.Remove(node);
            SizeBytes -= node.Value.Data.Length;
        }
    }
}
