using System.Runtime.CompilerServices;

namespace Orchestrator.ChunkStore.Actors.Backends;

/// <summary>
/// Chunks as files in the static-store layout, <c>&lt;root&gt;/chunks/&lt;2 hex&gt;/&lt;64 hex&gt;</c>, so any plain HTTP
/// server pointed at the root is a mirror. Writes are atomic: temp file in the same folder, fsync, rename.
/// </summary>
public sealed class FileSystemChunkBlobStore : IChunkBlobStore
{
    private readonly string _chunksRoot;

    /// <summary>Uses <paramref name="storeRoot"/>/chunks; the folder is created when missing.</summary>
    public FileSystemChunkBlobStore(string storeRoot)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(storeRoot);
        _chunksRoot = Path.Combine(Path.GetFullPath(storeRoot), "chunks");
        Directory.CreateDirectory(_chunksRoot);
    }

    /// <inheritdoc />
    public string Name => "filesystem";

    /// <summary>Absolute path where the chunk lives (whether or not it exists).</summary>
    public string PathOf(string chunkId) => Path.Combine(_chunksRoot, chunkId[..2], chunkId);

    /// <inheritdoc />
    public async Task<byte[]?> ReadAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        try
        {
            return await File.ReadAllBytesAsync(PathOf(chunkId), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <inheritdoc />
    public Task<bool> ExistsAsync(string chunkId, CancellationToken cancellationToken = default) =>
        Task.FromResult(File.Exists(PathOf(chunkId)));

    /// <inheritdoc />
    public async Task<bool> PutIfAbsentAsync(string chunkId, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var final = PathOf(chunkId);
        if (File.Exists(final)) return false;
        var dir = Path.GetDirectoryName(final)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{chunkId}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, FileOptions.Asynchronous))
            {
                await fs.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                fs.Flush(flushToDisk: true);
            }
            try
            {
                // overwrite: false: a concurrent writer of the same id won; its bytes are identical (content addressed).
                File.Move(temp, final, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(final))
            {
                return false;
            }
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        var path = PathOf(chunkId);
        if (!File.Exists(path)) return Task.FromResult(false);
        File.Delete(path);
        return Task.FromResult(true);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        foreach (var dir in Directory.EnumerateDirectories(_chunksRoot))
        {
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var name = Path.GetFileName(file);
                if (ChunkIds.IsValid(name)) yield return name;
            }
        }
    }
}
