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

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pooled && _array.Length > 0) ArrayPool<byte>.Shared.Return(_array);
        _array = [];
    }
}
