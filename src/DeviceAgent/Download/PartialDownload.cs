using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// The sink of one object download: received bytes are held in memory (an object is at most one chunk) and only a
/// transfer that runs longer than <see cref="Configuration.DownloadSettings.PartialCheckpointMilliseconds"/> is checkpointed into its part file,
/// so a chunk that arrives quickly reaches the disk once, decoded in its place in the tree, while a slow one is
/// resumed after a kill from what was checkpointed (at most one checkpoint interval of it is lost).
/// <para>
/// The part file only ever grows by whole pages appended at its end: a page of it is written once and never again,
/// so a checkpoint costs the bytes it adds and nothing more, however the kernel writes pages back in between.
/// </para>
/// </summary>
internal sealed class PartialDownload : Stream
{
    private static readonly int Page = Environment.SystemPageSize;

    private readonly string _path;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private byte[] _buffer;
    private int _length;
    private long _persisted;
    private long? _lastCheckpoint;

    /// <summary>Starts after <paramref name="prefix"/>, the bytes the part file already holds.</summary>
    /// <param name="path">The part file.</param>
    /// <param name="prefix">What the part file holds.</param>
    /// <param name="interval">Checkpoint interval.</param>
    /// <param name="time">Clock.</param>
    /// <param name="expected">The object's largest size: the buffer is rented at that size once (pooled, returned on dispose).</param>
    public PartialDownload(string path, byte[] prefix, TimeSpan interval, TimeProvider time, long expected = 64 * 1024)
    {
        _path = path;
        _interval = interval;
        _time = time;
        _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Clamp(Math.Max(expected, prefix.Length), 1, 1 << 24));
        prefix.CopyTo(_buffer, 0);
        _length = prefix.Length;
        _persisted = prefix.Length;
    }

    /// <summary>Every byte received so far (the part file's prefix included).</summary>
    public ReadOnlySpan<byte> Received => _buffer.AsSpan(0, _length);

    /// <summary>Hands the pooled buffer holding what was received to the caller, who returns it (<see cref="RentedBytes"/>); nothing is copied.</summary>
    public RentedBytes Detach()
    {
        var bytes = new RentedBytes(_buffer, _length, pooled: true);
        _buffer = [];
        _length = 0;
        return bytes;
    }

    /// <summary>Bytes this download appended to the part file.</summary>
    public long Checkpointed { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        RentedBytes.Append(ref _buffer, ref _length, buffer);
        var now = _time.GetTimestamp();
        // The clock starts with the first byte, so a server slow to answer never makes a fast transfer look slow.
        if (_lastCheckpoint is not { } last) _lastCheckpoint = now;
        else if (_time.GetElapsedTime(last, now) >= _interval)
        {
            Checkpoint();
            _lastCheckpoint = now;
        }
    }

    /// <summary>Appends the whole pages received since the last checkpoint to the part file.</summary>
    private void Checkpoint()
    {
        var upTo = _length / Page * Page;
        if (upTo <= _persisted) return;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        using var handle = File.OpenHandle(_path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None);
        RandomAccess.Write(handle, _buffer.AsSpan((int)_persisted, (int)(upTo - _persisted)), _persisted);
        Checkpointed += upTo - _persisted;
        _persisted = upTo;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    /// <summary>Only a restart from byte 0 (the source ignored or refused the Range): forgets everything received.</summary>
    public override void SetLength(long value)
    {
        if (value != 0) throw new NotSupportedException("a download restarts from byte 0 or continues; it is never cut elsewhere");
        _length = 0;
        _persisted = 0;
        _lastCheckpoint = null;
        DurableFile.TryDelete(_path);
    }

    public override long Seek(long offset, SeekOrigin origin) =>
        offset == 0 && origin == SeekOrigin.Begin && _length == 0 ? 0 : throw new NotSupportedException("a download only seeks to the start after a restart");

    public override bool CanRead => false;
    public override bool CanSeek => true;
    public override bool CanWrite => true;
    public override long Length => _length;
    public override long Position { get => _length; set => Seek(value, SeekOrigin.Begin); }
    public override void Flush() { }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _buffer.Length > 0)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
        base.Dispose(disposing);
    }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
