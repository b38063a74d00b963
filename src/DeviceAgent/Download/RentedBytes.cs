using System.Buffers;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Bytes in a buffer the owner returns to <see cref="ArrayPool{T}.Shared"/> when disposed (when it was rented): one
/// chunk after another passes through the same few buffers, so a download of any size leaves no chunk-sized garbage.
/// </summary>
public sealed class RentedBytes : IDisposable
{
    private byte[] _array;
    private readonly bool _pooled;

    /// <summary>Wraps the first <paramref name="length"/> bytes of <paramref name="array"/>; a <paramref name="pooled"/> array goes back to the shared pool on dispose.</summary>
    public RentedBytes(byte[] array, int length, bool pooled)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, array.Length);
        _array = array;
        Length = length;
        _pooled = pooled;
    }

    /// <summary>A pooled buffer of at least <paramref name="length"/> bytes whose first <paramref name="length"/> are used.</summary>
    public static RentedBytes Rent(int length) => new(ArrayPool<byte>.Shared.Rent(length), length, pooled: true);

    /// <summary>Number of bytes held.</summary>
    public int Length { get; }

    /// <summary>The bytes (valid until disposed).</summary>
    public Span<byte> Span => _array.AsSpan(0, Length);

    /// <summary>
    /// Appends <paramref name="data"/> after the first <paramref name="length"/> bytes of the pooled <paramref name="buffer"/>,
    /// first swapping it for a pooled one at least twice as large when it is full (the old one goes back to the pool).
    /// </summary>
    internal static void Append(ref byte[] buffer, ref int length, ReadOnlySpan<byte> data)
    {
        if (length + data.Length > buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(buffer.Length * 2, length + data.Length));
            buffer.AsSpan(0, length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = larger;
        }
        data.CopyTo(buffer.AsSpan(length));
        length += data.Length;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pooled && _array.Length > 0) ArrayPool<byte>.Shared.Return(_array);
        _array = [];
    }
}
