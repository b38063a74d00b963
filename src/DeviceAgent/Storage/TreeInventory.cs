using System.Security.Cryptography;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>What is on disk in a tree: regular files, their SHA-256, and the tree digest sent at check-in.</summary>
public static class TreeInventory
{
    /// <summary>Regular files under <paramref name="root"/> as (relative path with '/', full path), sorted by ordinal path. Symbolic links are not followed.</summary>
    public static IEnumerable<(string Relative, string Full)> Files(string root)
    {
        if (!Directory.Exists(root)) return [];
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            AttributesToSkip = FileAttributes.ReparsePoint,
            IgnoreInaccessible = false,
            ReturnSpecialDirectories = false,
        };
        return Directory.EnumerateFiles(root, "*", options)
            .Select(full => (Relative: Path.GetRelativePath(root, full).Replace('\\', '/'), Full: full))
            .OrderBy(t => t.Relative, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>SHA-256 of a file, lower-case hex, streamed through one pooled 64 KiB buffer (a check hashes whole trees file by file).</summary>
    public static string HashFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int n;
            while ((n = fs.Read(buffer, 0, buffer.Length)) > 0) hash.AppendData(buffer, 0, n);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Per-file hashes of a tree.</summary>
    public static IReadOnlyList<InventoryEntry> Scan(string root) =>
        Files(root).Select(f => new InventoryEntry(f.Relative, HashFile(f.Full))).ToList();

    /// <summary>Per-file hashes of a tree, reading only the files <paramref name="index"/> does not vouch for (and recording them).</summary>
    public static IReadOnlyList<InventoryEntry> Scan(string root, StatIndex index)
    {
        var files = Files(root).ToList();
        var entries = files.Select(f => new InventoryEntry(f.Relative, index.Hash(f.Full))).ToList();
        index.Retain(root, files.Select(f => f.Full).ToHashSet(StringComparer.Ordinal));
        return entries;
    }

    /// <summary>Tree digest as reported at check-in (<see cref="InventoryDigest"/>, docs/store-format.md).</summary>
    public static string Digest(IEnumerable<InventoryEntry> files) => InventoryDigest.Compute(files.Select(f => (f.Path, f.Sha256)));

    /// <summary>True for a path the manifest rules accept (<see cref="TreePaths.ProblemWithPath"/>): relative, '/'-separated, no '.' or '..' segments.</summary>
    public static bool IsSafeRelativePath(string path) => TreePaths.ProblemWithPath(path) is null;

    /// <summary>Joins a relative path under <paramref name="root"/> and proves the result stays inside it.</summary>
    /// <exception cref="InvalidDataException">The path would escape the root.</exception>
    public static string ResolveInside(string root, string relative)
    {
        if (TreePaths.ProblemWithPath(relative) is { } problem)
            throw new InvalidDataException($"path '{relative}' is refused: {problem}; nothing is written outside '{root}'");
        var rootFull = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(rootFull, relative));
        if (!full.StartsWith(rootFull, StringComparison.Ordinal))
            throw new InvalidDataException($"path '{relative}' resolves outside '{root}'");
        return full;
    }
}
