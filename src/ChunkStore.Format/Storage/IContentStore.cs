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

    /// <summary>
    /// <paramref name="length"/> bytes of the store-relative file from <paramref name="offset"/>, or null when the file
    /// is absent or shorter (a chunk inside a pack object).
    /// </summary>
    byte[]? ReadFileRange(string relativePath, long offset, int length);

    /// <summary>Store-relative paths of every signed pack index (<c>manifests/&lt;product&gt;/&lt;version&gt;.packs</c>), listed or not.</summary>
    IReadOnlyList<string> EnumeratePackIndexFiles();

    /// <summary>
    /// Stores a content-addressed object (a pack, <see cref="StoreLayout.PackPath"/>) atomically unless it exists; made
    /// durable by <see cref="Flush"/> like a chunk put. True when it was written now.
    /// </summary>
    bool PutObjectIfAbsent(string relativePath, ReadOnlySpan<byte> content);

    /// <summary>Atomically replaces the store-relative file.</summary>
    void WriteFile(string relativePath, ReadOnlySpan<byte> content);

    /// <summary>Makes every chunk put so far durable (called before a manifest commits to them).</summary>
    void Flush();

    /// <summary>Takes the store-wide writer lock; throws when another writer holds it.</summary>
    IDisposable AcquireWriterLock();
}
