using Orchestrator.ChunkStore.Codec;

namespace Orchestrator.ChunkStore.Storage;

/// <summary>
/// What publishing needs from a store: content-addressed chunk puts and atomic small-file writes, addressed by
/// <see cref="StoreLayout"/> paths. <see cref="FileSystemStore"/> is the on-disk implementation.
/// </summary>
public interface IContentStore
{
    /// <summary>True when a chunk object with this id is stored.</summary>
    bool ChunkExists(ChunkId id);

    /// <summary>Stores the object unless one with this id exists; true when it was written now.</summary>
    bool PutChunkIfAbsent(ChunkId id, ReadOnlySpan<byte> stored);

    /// <summary>The stored object, or null when absent.</summary>
    byte[]? ReadChunk(ChunkId id);

    /// <summary>True when the store-relative file exists.</summary>
    bool FileExists(string relativePath);

    /// <summary>The store-relative file's bytes, or null when absent.</summary>
    byte[]? ReadFile(string relativePath);

    /// <summary>Atomically replaces the store-relative file.</summary>
    void WriteFile(string relativePath, ReadOnlySpan<byte> content);

    /// <summary>Makes every chunk put so far durable (called before a manifest commits to them).</summary>
    void Flush();

    /// <summary>Takes the store-wide writer lock; throws when another writer holds it.</summary>
    IDisposable AcquireWriterLock();
}
