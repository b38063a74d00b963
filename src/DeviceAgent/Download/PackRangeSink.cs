using Orchestrator.ChunkStore.Packs;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// The sink of one Range request on a pack: receives the pack's bytes from <see cref="Position"/> on, cuts out each
/// wanted chunk object as soon as its last byte arrives and hands it to the caller, and drops the gap bytes between
/// chunks. At most one chunk object (plus what arrived of the next) is held at a time. After a cut,
/// <see cref="HeldPrefix"/> is what arrived of the first chunk not yet delivered, so the next attempt asks only for the
/// rest of it.
/// </summary>
internal sealed class PackRangeSink : Stream
{
    private readonly IReadOnlyList<PackedChunk> _chunks;
    private readonly Action<PackedChunk, ReadOnlySpan<byte>> _deliver;
    private byte[] _buffer;
    private int _length;      // bytes held, from _bufferStart
    private long _bufferStart;
    private long _position;   // pack offset of the next byte to arrive
    private int _next;        // first chunk not yet delivered

    /// <summary>Starts after <paramref name="prefix"/>, what an earlier attempt received of <paramref name="chunks"/>[0].</summary>
    /// <param name="chunks">Chunks still wanted from this range, sorted by offset.</param>
    /// <param name="prefix">Bytes of the first chunk already held (its first <c>prefix.Length</c> bytes).</param>
    /// <param name="deliver">Called with each complete chunk object, in offset order; throws to refuse it.</param>
    public PackRangeSink(IReadOnlyList<PackedChunk> chunks, ReadOnlySpan<byte> prefix, Action<PackedChunk, ReadOnlySpan<byte>> deliver)
    {
        _chunks = chunks;
        _deliver = deliver;
        _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(64 * 1024, chunks.Count == 0 ? 0 : chunks[0].Stored));
        prefix.CopyTo(_buffer);
        _length = prefix.Length;
        _bufferStart = chunks.Count == 0 ? 0 : chunks[0].Offset;
        _position = _bufferStart + prefix.Length;
        Start = _position;
    }

    /// <summary>Pack offset the request starts at (after the held prefix).</summary>
    public long Start { get; private init; }

    /// <summary>True when every chunk was delivered.</summary>
    public bool Complete => _next == _chunks.Count;

    /// <summary>What arrived of the first undelivered chunk (empty when none of it did).</summary>
    public ReadOnlySpan<byte> HeldPrefix =>
        _next < _chunks.Count && _bufferStart == _chunks[_next].Offset ? _buffer.AsSpan(0, _length) : [];

    public override void Write(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0 && _next < _chunks.Count)
        {
            var chunk = _chunks[_next];
            if (_position < chunk.Offset)
            {
                // Gap bytes before the next wanted chunk: received, counted, dropped.
                var skip = (int)Math.Min(data.Length, chunk.Offset - _position);
                data = data[skip..];
                _position += skip;
                if (_position == chunk.Offset) { _bufferStart = _position; _length = 0; }
                continue;
            }
            var want = (int)(chunk.Offset + chunk.Stored - _position);
            var take = Math.Min(want, data.Length);
            Append(data[..take]);
            data = data[take..];
            _position += take;
            if (_position < chunk.Offset + chunk.Stored) break;
            var at = (int)(chunk.Offset - _bufferStart);
            _deliver(chunk, _buffer.AsSpan(at, chunk.Stored));
            _next++;
            DropBefore(_next < _chunks.Count ? Math.Min(_chunks[_next].Offset, _position) : _position);
        }
        if (data.Length > 0) throw new InvalidDataException("the range holds more bytes than its chunks");
    }

    private void Append(ReadOnlySpan<byte> data) => RentedBytes.Append(ref _buffer, ref _length, data);

    // Keeps the bytes from `from` on (an overlapping next chunk starts inside what is held).
    private void DropBefore(long from)
    {
        var drop = (int)Math.Clamp(from - _bufferStart, 0, _length);
        _buffer.AsSpan(drop, _length - drop).CopyTo(_buffer);
        _length -= drop;
        _bufferStart += drop;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _position;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException("a pack range is never restarted inside one request");

    protected override void Dispose(bool disposing)
    {
        if (disposing && _buffer.Length > 0)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
        base.Dispose(disposing);
    }
}
