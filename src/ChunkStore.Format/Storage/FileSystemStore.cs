using System.Collections.Concurrent;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Storage;

/// <summary>
/// The store as a directory tree (docs/store-format.md): the folder itself is the static mirror. Chunk puts are
/// put-if-absent with temp + fsync + rename; directory fsyncs of chunk folders are batched into
/// <see cref="Flush"/>, which publishing calls before it writes the manifest that refers to them. Thread-safe.
/// </summary>
public sealed class FileSystemStore : IContentStore
{
    private readonly ConcurrentDictionary<string, byte> _dirtyDirectories = new(StringComparer.Ordinal);

    private FileSystemStore(string root) => Root = root;

    /// <summary>Absolute path of the store root.</summary>
    public string Root { get; }

    /// <summary>
    /// Opens the store at <paramref name="root"/>. With <paramref name="create"/> a missing folder is allowed and
    /// created by the first write (<see cref="AcquireWriterLock"/>), so a publish rejected during validation
    /// leaves no trace; without it a missing folder is an <see cref="InvalidInputException"/>.
    /// </summary>
    public static FileSystemStore Open(string root, bool create)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        var full = Path.GetFullPath(root);
        if (File.Exists(full))
            throw new InvalidInputException($"Store path '{full}' is a file: pass a directory for --store.");
        if (!create && !Directory.Exists(full))
            throw new InvalidInputException($"Store '{full}' does not exist: check --store, or publish a release to create it.");
        return new FileSystemStore(full);
    }

    /// <summary>Absolute file path of a store-relative path (validated so it cannot leave the root).</summary>
    public string FullPath(string relativePath)
    {
        var problem = TreePaths.ProblemWithPath(relativePath);
        if (problem is not null)
            throw new ArgumentException($"Store path '{relativePath}' is invalid: {problem}.", nameof(relativePath));
        return Path.Combine(Root, relativePath);
    }

    /// <inheritdoc />
    public bool ChunkExists(ChunkId id) => File.Exists(FullPath(StoreLayout.ChunkPath(id)));

    /// <inheritdoc />
    public bool PutChunkIfAbsent(ChunkId id, ReadOnlySpan<byte> stored)
    {
        var path = FullPath(StoreLayout.ChunkPath(id));
        // On Linux one syncfs in Flush replaces an fsync per chunk (publishing writes thousands of them);
        // elsewhere each chunk is fsynced before its rename.
        if (!AtomicFile.WriteIfAbsent(path, stored, syncDirectory: false, syncFile: !OperatingSystem.IsLinux())) return false;
        _dirtyDirectories.TryAdd(Path.GetDirectoryName(path)!, 0);
        return true;
    }

    /// <inheritdoc />
    public byte[]? ReadChunk(ChunkId id) => ReadFile(StoreLayout.ChunkPath(id));

    /// <summary>Size in bytes of a stored chunk, or null when absent.</summary>
    public long? ChunkSize(ChunkId id)
    {
        var info = new FileInfo(FullPath(StoreLayout.ChunkPath(id)));
        return info.Exists ? info.Length : null;
    }

    /// <summary>Deletes a chunk object; true when it existed.</summary>
    public bool DeleteChunk(ChunkId id) => DeleteFile(StoreLayout.ChunkPath(id));

    /// <summary>Every stored chunk id (files named by a valid id under <c>chunks/ab/</c>; temp files skipped).</summary>
    public IEnumerable<ChunkId> EnumerateChunks() => EnumerateObjects(StoreLayout.ChunksDirectory);

    /// <summary>Every stored pack id (files named by a valid id under <c>packs/ab/</c>; temp files skipped).</summary>
    public IEnumerable<ChunkId> EnumeratePacks() => EnumerateObjects(StoreLayout.PacksDirectory);

    private IEnumerable<ChunkId> EnumerateObjects(string folder)
    {
        var chunks = Path.Combine(Root, folder);
        if (!Directory.Exists(chunks)) yield break;
        foreach (var dir in Directory.EnumerateDirectories(chunks).Order(StringComparer.Ordinal))
        {
            var prefix = Path.GetFileName(dir);
            foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(file);
                if (ChunkId.TryParse(name, out var id) && name.StartsWith(prefix, StringComparison.Ordinal))
                    yield return id;
            }
        }
    }

    /// <summary>Temp files left by interrupted writes, as absolute paths.</summary>
    public IEnumerable<string> EnumerateTempFiles()
    {
        if (Directory.Exists(Root))
            foreach (var file in Directory.EnumerateFiles(Root))
                if (AtomicFile.IsTempFile(Path.GetFileName(file)))
                    yield return file; // e.g. an interrupted rewrite of the publish cache
        foreach (var top in new[] { StoreLayout.ChunksDirectory, StoreLayout.PacksDirectory, StoreLayout.ManifestsDirectory, StoreLayout.ChannelsDirectory, StoreLayout.DeltasDirectory })
        {
            var dir = Path.Combine(Root, top);
            if (!Directory.Exists(dir)) continue;
            foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
                if (AtomicFile.IsTempFile(Path.GetFileName(file)))
                    yield return file;
        }
    }

    /// <summary>Products that have a folder under <c>manifests/</c>.</summary>
    public IReadOnlyList<string> EnumerateProducts()
    {
        var dir = Path.Combine(Root, StoreLayout.ManifestsDirectory);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>()
            .Where(StoreNames.IsValidProduct).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Channel names of a product.</summary>
    public IReadOnlyList<string> EnumerateChannels(string product)
    {
        var dir = Path.Combine(Root, StoreLayout.ChannelsDirectory, product);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir, "*.json").Select(Path.GetFileNameWithoutExtension).OfType<string>()
            .Where(StoreNames.IsValidProduct).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Manifest, signature, pack index and chunk patch index file paths (store-relative) present for a product, listed or not.</summary>
    public IReadOnlyList<string> EnumerateManifestFiles(string product)
    {
        var dir = Path.Combine(Root, StoreLayout.ManifestsDirectory, product);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir)
            .Select(Path.GetFileName).OfType<string>()
            .Where(n => !AtomicFile.IsTempFile(n) && n != StoreLayout.IndexFileName && (n.EndsWith(".json", StringComparison.Ordinal) || n.EndsWith(".json.sig", StringComparison.Ordinal)
                || n.EndsWith(StoreLayout.PackIndexSuffix, StringComparison.Ordinal) || n.EndsWith(StoreLayout.ChunkPatchIndexSuffix, StringComparison.Ordinal)
                || n.EndsWith(".zst", StringComparison.Ordinal)))
            .Order(StringComparer.Ordinal)
            .Select(n => $"{StoreLayout.ManifestsDirectory}/{product}/{n}")
            .ToList();
    }

    /// <summary>Delta manifest paths (store-relative, <c>deltas/&lt;product&gt;/&lt;from&gt;/&lt;to&gt;.json</c>) present for a product.</summary>
    public IReadOnlyList<string> EnumerateDeltaManifests(string product)
    {
        var dir = Path.Combine(Root, StoreLayout.DeltasDirectory, product);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir, "*.json", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(StoreLayout.IsDeltaManifestPath)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Products that have a folder under <c>deltas/</c>.</summary>
    public IReadOnlyList<string> EnumerateDeltaProducts()
    {
        var dir = Path.Combine(Root, StoreLayout.DeltasDirectory);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>()
            .Where(StoreNames.IsValidProduct).Order(StringComparer.Ordinal).ToList();
    }

    /// <inheritdoc />
    public bool FileExists(string relativePath) => File.Exists(FullPath(relativePath));

    /// <inheritdoc />
    public byte[]? ReadFile(string relativePath)
    {
        var path = FullPath(relativePath);
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <inheritdoc />
    public byte[]? ReadFileRange(string relativePath, long offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var path = FullPath(relativePath);
        try
        {
            using var handle = File.OpenHandle(path);
            var bytes = new byte[length];
            var done = 0;
            while (done < length)
            {
                var n = RandomAccess.Read(handle, bytes.AsSpan(done), offset + done);
                if (n == 0) return null;
                done += n;
            }
            return bytes;
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> EnumeratePackIndexFiles() =>
        EnumerateProducts().SelectMany(EnumerateManifestFiles).Where(f => f.EndsWith(StoreLayout.PackIndexSuffix, StringComparison.Ordinal)).ToList();

    /// <inheritdoc />
    public void WriteFile(string relativePath, ReadOnlySpan<byte> content) => AtomicFile.Write(FullPath(relativePath), content);

    /// <inheritdoc />
    public bool PutObjectIfAbsent(string relativePath, ReadOnlySpan<byte> content)
    {
        var path = FullPath(relativePath);
        if (!AtomicFile.WriteIfAbsent(path, content, syncDirectory: false, syncFile: !OperatingSystem.IsLinux())) return false;
        _dirtyDirectories.TryAdd(Path.GetDirectoryName(path)!, 0);
        return true;
    }

    /// <summary>Deletes a store-relative file; true when it existed.</summary>
    public bool DeleteFile(string relativePath)
    {
        var path = FullPath(relativePath);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        _dirtyDirectories.TryAdd(Path.GetDirectoryName(path)!, 0);
        return true;
    }

    /// <inheritdoc />
    public void Flush()
    {
        if (AtomicFile.SyncFileSystem(Root))
        {
            _dirtyDirectories.Clear();
            return;
        }
        foreach (var dir in _dirtyDirectories.Keys.Order(StringComparer.Ordinal).ToList())
        {
            AtomicFile.SyncDirectory(dir);
            _dirtyDirectories.TryRemove(dir, out _);
        }
        // New chunk and pack folders are entries of chunks/ and packs/ themselves.
        foreach (var top in new[] { StoreLayout.ChunksDirectory, StoreLayout.PacksDirectory })
            if (Directory.Exists(Path.Combine(Root, top))) AtomicFile.SyncDirectory(Path.Combine(Root, top));
        AtomicFile.SyncDirectory(Root);
    }

    /// <inheritdoc />
    public IDisposable AcquireWriterLock()
    {
        Directory.CreateDirectory(Root);
        var path = Path.Combine(Root, StoreLayout.LockFile);
        try
        {
            // FileShare.None maps to an exclusive flock on Unix: released by the kernel if the process dies.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new StoreBusyException($"Store '{Root}' is locked by another writer (publish or gc in progress): wait for it to finish and retry.", ex);
        }
    }
}
