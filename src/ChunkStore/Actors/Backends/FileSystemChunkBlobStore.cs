using System.Runtime.CompilerServices;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.ChunkStore.Actors.Backends;

/// <summary>
/// Chunks as files of the static store (<see cref="FileSystemStore"/>, layout <c>chunks/&lt;2 hex&gt;/&lt;id&gt;</c>), so
/// any plain HTTP server pointed at the store root is a mirror. Writes go through the store's atomic put-if-absent
/// and are made durable (directory fsync) before the put is acknowledged.
/// </summary>
public sealed class FileSystemChunkBlobStore : IChunkBlobStore
{
    private readonly FileSystemStore _store;
    private readonly ChunkLocator _locator;

    /// <summary>Serves the store rooted at <paramref name="storeRoot"/> (created on first write when missing).</summary>
    public FileSystemChunkBlobStore(string storeRoot)
    {
        _store = FileSystemStore.Open(storeRoot, create: true);
        _locator = new ChunkLocator(_store);
    }

    /// <inheritdoc />
    public string Name => "filesystem";

    /// <summary>Absolute path where the chunk lives (whether or not it exists).</summary>
    public string PathOf(string chunkId) => _store.FullPath(StoreLayout.ChunkPath(ChunkId.Parse(chunkId)));

    /// <summary>The chunk object's bytes: its own file, else its range of a pack some stored pack index locates (<see cref="ChunkLocator"/>).</summary>
    public async Task<byte[]?> ReadAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        try
        {
            return await File.ReadAllBytesAsync(PathOf(chunkId), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { }
        catch (DirectoryNotFoundException) { }
        return await Task.Run(() => _locator.Read(ChunkId.Parse(chunkId)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// True when the chunk is stored as its own object. A chunk held only in a pack counts as absent here, so an upload
    /// (<c>PUT /admin/v1/chunks</c>) of a release without a pack index stores it as an object: every release's chunks stay
    /// reachable for plain mirrors and kept by gc, which marks packs only through pack indexes.
    /// </summary>
    public Task<bool> ExistsAsync(string chunkId, CancellationToken cancellationToken = default) =>
        Task.FromResult(_store.ChunkExists(ChunkId.Parse(chunkId)));

    /// <inheritdoc />
    public Task<bool> PutIfAbsentAsync(string chunkId, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var written = _store.PutChunkIfAbsent(ChunkId.Parse(chunkId), data.Span);
        if (written) _store.Flush();
        return Task.FromResult(written);
    }

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string chunkId, CancellationToken cancellationToken = default) =>
        Task.FromResult(_store.DeleteChunk(ChunkId.Parse(chunkId)));

    /// <inheritdoc />
    public async IAsyncEnumerable<string> ListAsync(DateTimeOffset? storedBefore = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        foreach (var id in _store.EnumerateChunks())
        {
            cancellationToken.ThrowIfCancellationRequested();
            // The file's write time is when the put renamed it into place.
            if (storedBefore is { } cutoff && File.GetLastWriteTimeUtc(PathOf(id.Hex)) >= cutoff.UtcDateTime) continue;
            yield return id.Hex;
        }
    }
}
