using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Verified chunks on local disk, named by id (SHA-256 of the stored bytes). Only bytes whose hash equals their
/// id ever enter the cache, so a restarted session resumes with everything it already fetched and never trusts a
/// half-written file. Partial downloads live beside it for HTTP Range resume.
/// </summary>
public sealed class ChunkCache
{
    private readonly string _root;
    private readonly string _partial;

    /// <summary>Creates the cache over two folders (created on demand).</summary>
    public ChunkCache(string root, string partialRoot)
    {
        _root = root;
        _partial = partialRoot;
    }

    /// <summary>Path of a cached chunk.</summary>
    public string PathOf(string id) => System.IO.Path.Combine(_root, Checked(id)[..2], id);

    /// <summary>Path where a partial download of a chunk accumulates.</summary>
    public string PartialPathOf(string id) => System.IO.Path.Combine(_partial, Checked(id) + ".part");

    /// <summary>Reads a cached chunk and re-checks its id; a corrupted entry is deleted and reported as absent.</summary>
    public byte[]? TryRead(string id)
    {
        var path = PathOf(id);
        if (!File.Exists(path)) return null;
        var bytes = File.ReadAllBytes(path);
        if (Convert.ToHexStringLower(SHA256.HashData(bytes)) == id) return bytes;
        DurableFile.TryDelete(path);
        return null;
    }

    /// <summary>
    /// True when a copy whose bytes hash to <paramref name="id"/> is cached. A damaged or foreign file under the name is
    /// deleted and reported absent, so the download fetches it again within the same attempt instead of the install
    /// failing on it later.
    /// </summary>
    public bool Contains(string id)
    {
        var path = PathOf(id);
        if (!File.Exists(path)) return false;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            if (Convert.ToHexStringLower(SHA256.HashData(fs)) == id) return true;
        }
        catch (IOException) { /* unreadable counts as damaged */ }
        DurableFile.TryDelete(path);
        return false;
    }

    /// <summary>Verifies a completed partial file against its id and moves it into the cache.</summary>
    /// <param name="id">Chunk id.</param>
    /// <param name="discardOnMismatch">Delete the partial file when it does not verify (true once the response ended; false when probing whether an interrupted download was in fact complete).</param>
    /// <returns>False when the bytes do not hash to the id.</returns>
    public bool CommitPartial(string id, bool discardOnMismatch = true)
    {
        var partial = PartialPathOf(id);
        string actual;
        using (var fs = new FileStream(partial, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            actual = Convert.ToHexStringLower(SHA256.HashData(fs));
            fs.Flush(flushToDisk: true);
        }
        if (actual != id)
        {
            if (discardOnMismatch) DurableFile.TryDelete(partial);
            return false;
        }
        var target = PathOf(id);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
        File.Move(partial, target, overwrite: true);
        DurableFile.SyncDirectory(System.IO.Path.GetDirectoryName(target)!);
        return true;
    }

    /// <summary>Removes cached chunks not in <paramref name="keep"/> (after a successful install).</summary>
    public int Prune(IReadOnlySet<string> keep)
    {
        var removed = 0;
        if (Directory.Exists(_root))
            foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
                if (!keep.Contains(System.IO.Path.GetFileName(file))) { DurableFile.TryDelete(file); removed++; }
        if (Directory.Exists(_partial))
            foreach (var file in Directory.EnumerateFiles(_partial))
                if (!keep.Contains(System.IO.Path.GetFileNameWithoutExtension(file))) { DurableFile.TryDelete(file); removed++; }
        return removed;
    }

    // Anything but 64 lower-case hex characters is refused before it can become a path.
    private static string Checked(string id) =>
        ChunkId.IsValid(id) ? id : throw new InvalidDataException($"chunk id '{id}' is not 64 lower-case hex characters; refusing it");
}
