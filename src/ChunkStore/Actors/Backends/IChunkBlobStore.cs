namespace Orchestrator.ChunkStore.Actors.Backends;

/// <summary>
/// Durable storage of chunk bytes behind the chunk-store actors. Implementations: <see cref="FileSystemChunkBlobStore"/>
/// (the static-store layout, default) and <see cref="PostgresChunkBlobStore"/> (clusters without shared volumes).
/// Callers validate ids with <see cref="Codec.ChunkId.IsValid"/> before calling.
/// </summary>
public interface IChunkBlobStore
{
    /// <summary>Short name for logs and metrics, e.g. "filesystem".</summary>
    string Name { get; }

    /// <summary>The stored bytes, or null when the chunk is absent.</summary>
    Task<byte[]?> ReadAsync(string chunkId, CancellationToken cancellationToken = default);

    /// <summary>Whether the chunk is stored.</summary>
    Task<bool> ExistsAsync(string chunkId, CancellationToken cancellationToken = default);

    /// <summary>Stores the bytes durably unless the chunk is already present. Returns true when newly written, false when deduplicated.</summary>
    Task<bool> PutIfAbsentAsync(string chunkId, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>Removes the chunk (garbage collection). Returns false when it was not there.</summary>
    Task<bool> DeleteAsync(string chunkId, CancellationToken cancellationToken = default);

    /// <summary>Every stored chunk id, in no particular order; with <paramref name="storedBefore"/> only chunks stored before that instant.</summary>
    IAsyncEnumerable<string> ListAsync(DateTimeOffset? storedBefore = null, CancellationToken cancellationToken = default);
}
