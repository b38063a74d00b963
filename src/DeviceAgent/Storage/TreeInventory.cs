using System.Security.Cryptography;
using System.Text;
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

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string HashFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    /// <summary>Per-file hashes of a tree.</summary>
    public static IReadOnlyList<InventoryEntry> Scan(string root) =>
        Files(root).Select(f => new InventoryEntry(f.Relative, HashFile(f.Full))).ToList();

    /// <summary>Tree digest: SHA-256 over <c>&lt;path&gt;\n&lt;sha256&gt;\n</c> per file, sorted by ordinal path (docs/store-format.md).</summary>
    public static string Digest(IEnumerable<(string Path, string Sha256)> files)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (path, sha) in files.OrderBy(f => f.Path, StringComparer.Ordinal))
            h.AppendData(Encoding.UTF8.GetBytes(path + "\n" + sha + "\n"));
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>Digest of scanned entries.</summary>
    public static string Digest(IEnumerable<InventoryEntry> files) => Digest(files.Select(f => (f.Path, f.Sha256)));

    /// <summary>True for a relative path with forward slashes, no empty, '.' or '..' segments, no drive or root, no NUL.</summary>
    public static bool IsSafeRelativePath(string path)
    {
        if (string.IsNullOrEmpty(path) || path.Length > 4096 || path.Contains('\0') || path.Contains('\\')) return false;
        if (path.StartsWith('/') || (path.Length >= 2 && path[1] == ':')) return false;
        foreach (var seg in path.Split('/'))
            if (seg.Length == 0 || seg == "." || seg == "..") return false;
        return true;
    }

    /// <summary>Joins a relative path under <paramref name="root"/> and proves the result stays inside it.</summary>
    /// <exception cref="InvalidDataException">The path would escape the root.</exception>
    public static string ResolveInside(string root, string relative)
    {
        if (!IsSafeRelativePath(relative))
            throw new InvalidDataException($"path '{relative}' is not a safe relative path (absolute, empty segment, '.' or '..'); refusing to write outside '{root}'");
        var rootFull = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(rootFull, relative));
        if (!full.StartsWith(rootFull, StringComparison.Ordinal))
            throw new InvalidDataException($"path '{relative}' resolves outside '{root}'");
        return full;
    }
}
