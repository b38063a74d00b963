using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Store objects on local disk, named by id (SHA-256 of the stored bytes), and the partial downloads of objects in
/// flight. Whole objects are kept only where an object is read again after its download (the parts a delta patch is
/// built from); chunks of the chunk path go straight into their place in the tree being built and are never kept
/// here. Only bytes whose hash equals their id ever enter the cache, so a restarted session never trusts a
/// half-written file. A partial download is the received prefix of one object, kept across restarts for HTTP Range
/// resume and verified as a whole once complete.
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

    /// <summary>Path of a cached object.</summary>
    public string PathOf(string id) => System.IO.Path.Combine(_root, Checked(id)[..2], id);

    /// <summary>Path where a partial download of an object accumulates.</summary>
    public string PartialPathOf(string id) => System.IO.Path.Combine(_partial, Checked(id) + ".part");

    /// <summary>Reads a cached object and re-checks its id; a corrupted entry is deleted and reported as absent.</summary>
    public byte[]? TryRead(string id)
    {
        var path = PathOf(id);
        if (!File.Exists(path)) return null;
        var bytes = File.ReadAllBytes(path);
        if (Matches(bytes, id)) return bytes;
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

    /// <summary>Caches a verified object (atomically) and drops its partial download.</summary>
    /// <exception cref="InvalidDataException">The bytes do not hash to <paramref name="id"/>.</exception>
    public void Put(string id, byte[] stored)
    {
        if (!Matches(stored, id)) throw new InvalidDataException($"bytes do not hash to object id {id}; not cached");
        var target = PathOf(id);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
        DurableFile.WriteAllBytes(target, stored);
        DeletePartial(id);
    }

    /// <summary>
    /// The received prefix of an object kept by an earlier download (empty when none). A prefix of
    /// <paramref name="maxStoredSize"/> bytes or more cannot be a proper prefix and is discarded.
    /// </summary>
    public byte[] ReadPartial(string id, long maxStoredSize)
    {
        var path = PartialPathOf(id);
        try
        {
            if (!File.Exists(path)) return [];
            if (new FileInfo(path).Length <= maxStoredSize) return File.ReadAllBytes(path);
        }
        catch (IOException) { /* unreadable counts as damaged */ }
        DurableFile.TryDelete(path);
        return [];
    }

    /// <summary>Forgets the partial download of an object (it was completed and used, or it failed verification).</summary>
    public void DeletePartial(string id) => DurableFile.TryDelete(PartialPathOf(id));

    /// <summary>True when <paramref name="stored"/> hashes to <paramref name="id"/>.</summary>
    public static bool Matches(ReadOnlySpan<byte> stored, string id) => Convert.ToHexStringLower(SHA256.HashData(stored)) == id;

    /// <summary>Removes cached objects and partial downloads not in <paramref name="keep"/> (after a successful install).</summary>
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
