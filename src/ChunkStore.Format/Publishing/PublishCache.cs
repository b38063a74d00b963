using System.Buffers.Binary;
using System.Collections.Concurrent;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.ChunkStore.Publishing;

/// <summary>
/// Publisher-side map from a chunk's keyed plaintext tag (<see cref="ChunkCodec.PlaintextTag"/>) to the id of
/// the object already stored for it, kept in <c>.orch-publish-cache</c> at the store root. It lets a publish
/// skip compressing and encrypting every chunk an earlier release already stored (the common case between
/// successive versions) and keeps dedup working against objects an older zstd build wrote. Only a cache: a missing,
/// damaged or stale file costs time, never correctness (a hit is used only if the object still exists and
/// the recorded length matches; tags are keyed, so a cache built under another content key never hits).
/// </summary>
internal sealed class PublishCache
{
    private static ReadOnlySpan<byte> Magic => "OPC1"u8;
    private const int RecordLength = 32 + 32 + 4;

    private readonly ConcurrentDictionary<Tag, (ChunkId Id, int Length)> _entries = new();
    private int _added;

    /// <summary>True when this run added entries worth saving.</summary>
    public bool Changed => Volatile.Read(ref _added) > 0;

    public static PublishCache Load(IContentStore store)
    {
        var cache = new PublishCache();
        var bytes = store.ReadFile(StoreLayout.PublishCacheFile);
        if (bytes is null || bytes.Length < Magic.Length || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic) ||
            (bytes.Length - Magic.Length) % RecordLength != 0)
            return cache;
        for (var offset = Magic.Length; offset < bytes.Length; offset += RecordLength)
        {
            var record = bytes.AsSpan(offset, RecordLength);
            if (!ChunkId.TryParse(Convert.ToHexStringLower(record.Slice(32, 32)), out var id)) continue;
            cache._entries[Tag.From(record[..32])] = (id, BinaryPrimitives.ReadInt32LittleEndian(record[64..]));
        }
        return cache;
    }

    public bool TryGet(ReadOnlySpan<byte> tag, out ChunkId id, out int length)
    {
        if (_entries.TryGetValue(Tag.From(tag), out var entry))
        {
            (id, length) = entry;
            return true;
        }
        id = default;
        length = 0;
        return false;
    }

    public void Add(ReadOnlySpan<byte> tag, ChunkId id, int length)
    {
        _entries[Tag.From(tag)] = (id, length);
        Interlocked.Increment(ref _added);
    }

    /// <summary>Drops the entries whose chunk id matches <paramref name="gone"/>; returns how many.</summary>
    public int RemoveWhere(Func<ChunkId, bool> gone)
    {
        var removed = 0;
        foreach (var (tag, entry) in _entries)
            if (gone(entry.Id) && _entries.TryRemove(tag, out _)) removed++;
        return removed;
    }

    /// <summary>Entries held.</summary>
    public int Count => _entries.Count;

    public byte[] ToBytes()
    {
        var snapshot = _entries.ToArray();
        var bytes = new byte[Magic.Length + snapshot.Length * RecordLength];
        Magic.CopyTo(bytes);
        var offset = Magic.Length;
        foreach (var (tag, (id, length)) in snapshot)
        {
            var record = bytes.AsSpan(offset, RecordLength);
            tag.CopyTo(record[..32]);
            Convert.FromHexString(id.Hex, record.Slice(32, 32), out _, out _);
            BinaryPrimitives.WriteInt32LittleEndian(record[64..], length);
            offset += RecordLength;
        }
        return bytes;
    }

    private readonly record struct Tag(ulong A, ulong B, ulong C, ulong D)
    {
        public static Tag From(ReadOnlySpan<byte> tag) => new(
            BinaryPrimitives.ReadUInt64LittleEndian(tag),
            BinaryPrimitives.ReadUInt64LittleEndian(tag[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(tag[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(tag[24..]));

        public void CopyTo(Span<byte> destination)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination, A);
            BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], B);
            BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], C);
            BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], D);
        }
    }
}
