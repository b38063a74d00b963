using System.Runtime.InteropServices;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Publishing;

/// <summary>A regular file found in a release tree.</summary>
/// <param name="RelativePath">Path relative to the tree root, '/' separators.</param>
/// <param name="FullPath">Absolute path on disk.</param>
/// <param name="Mode">Permission bits (0 .. 0o777).</param>
/// <param name="Size">Length when scanned.</param>
public sealed record TreeFile(string RelativePath, string FullPath, int Mode, long Size);

/// <summary>A symbolic link found in a release tree (recorded, never followed).</summary>
/// <param name="RelativePath">Path relative to the tree root.</param>
/// <param name="Target">The link's target text as stored in the link.</param>
public sealed record TreeSymlink(string RelativePath, string Target);

/// <summary>
/// A validated snapshot of a release tree on disk: every entry checked against the manifest path rules, every
/// regular file opened once to prove it is readable. Scanning happens before anything is written to the store,
/// so a bad tree leaves the store unchanged.
/// </summary>
public sealed class ReleaseTree
{
    private ReleaseTree(string root, IReadOnlyList<TreeFile> files, IReadOnlyList<TreeSymlink> symlinks)
    {
        Root = root;
        Files = files;
        Symlinks = symlinks;
    }

    /// <summary>Absolute tree root.</summary>
    public string Root { get; }

    /// <summary>Regular files sorted by ordinal path.</summary>
    public IReadOnlyList<TreeFile> Files { get; }

    /// <summary>Symlinks sorted by ordinal path.</summary>
    public IReadOnlyList<TreeSymlink> Symlinks { get; }

    /// <summary>Sum of file sizes.</summary>
    public long TotalBytes => Files.Sum(f => f.Size);

    internal static Stream DefaultOpenRead(string path) =>
        new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);

    /// <summary>Scans and validates the tree at <paramref name="root"/>; throws <see cref="InvalidInputException"/> naming the first bad entry.</summary>
    public static ReleaseTree Scan(string root) => Scan(root, DefaultOpenRead);

    internal static ReleaseTree Scan(string root, Func<string, Stream> openRead)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
            throw new InvalidInputException($"Release tree '{full}' is not a directory: pass the folder holding the release's files.");
        var files = new List<TreeFile>();
        var symlinks = new List<TreeSymlink>();
        Walk(full, "", files, symlinks, openRead);
        files.Sort((a, b) => string.CompareOrdinal(a.RelativePath, b.RelativePath));
        symlinks.Sort((a, b) => string.CompareOrdinal(a.RelativePath, b.RelativePath));
        var all = files.Select(f => f.RelativePath).Concat(symlinks.Select(s => s.RelativePath)).ToList();
        all.Sort(string.CompareOrdinal);
        var setProblem = TreePaths.ProblemWithPathSet(all);
        if (setProblem is not null)
            throw new InvalidInputException($"Release tree '{full}' is not usable: {setProblem}.");
        // Dangling links are refused here, where the publisher can still fix the tree; a device refuses only escapes and loops.
        var linkProblem = TreePaths.ProblemWithLinks(files.Select(f => f.RelativePath), symlinks.Select(l => (l.RelativePath, l.Target)).ToList(), requireTargets: true);
        if (linkProblem is not null)
            throw new InvalidInputException($"Release tree '{full}' cannot be published: {linkProblem}. Point the link at a file or folder of the release, or remove it.");
        return new ReleaseTree(full, files, symlinks);
    }

    private static void Walk(string dir, string prefix, List<TreeFile> files, List<TreeSymlink> symlinks, Func<string, Stream> openRead)
    {
        IEnumerable<string> entries;
        try
        {
            entries = Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidInputException($"Folder '{dir}' of the release tree cannot be listed ({ex.Message}): fix its permissions.", ex);
        }
        foreach (var entry in entries)
        {
            var name = Path.GetFileName(entry);
            var relative = prefix.Length == 0 ? name : prefix + "/" + name;
            var problem = TreePaths.ProblemWithPath(relative);
            if (problem is not null)
                throw new InvalidInputException($"Entry '{entry}' cannot be published: its path '{relative}' is not allowed ({problem}). Rename it.");
            var type = FileType(entry);
            switch (type)
            {
                case EntryType.Symlink:
                    var target = new FileInfo(entry).LinkTarget ?? "";
                    var targetProblem = TreePaths.ProblemWithSymlinkTarget(relative, target);
                    if (targetProblem is not null)
                        throw new InvalidInputException($"Symlink '{entry}' -> '{target}' cannot be published: {targetProblem}. Make it a relative link inside the tree, or replace it with the file.");
                    symlinks.Add(new TreeSymlink(relative, target));
                    break;
                case EntryType.Directory:
                    Walk(entry, relative, files, symlinks, openRead);
                    break;
                case EntryType.Regular:
                    var info = new FileInfo(entry);
                    try
                    {
                        using var probe = openRead(entry);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        throw new InvalidInputException($"File '{entry}' cannot be read ({ex.Message}): fix its permissions or remove it from the tree.", ex);
                    }
                    var mode = OperatingSystem.IsWindows() ? 420 : (int)File.GetUnixFileMode(entry) & 511;
                    files.Add(new TreeFile(relative, entry, mode, info.Length));
                    break;
                default:
                    throw new InvalidInputException($"Entry '{entry}' is a {type.ToString().ToLowerInvariant()}, not a regular file, folder or symlink: remove it from the tree.");
            }
        }
    }

    private enum EntryType { Regular, Directory, Symlink, Fifo, CharacterDevice, BlockDevice, Socket, Unknown }

    private static EntryType FileType(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) return EntryType.Symlink;
        if (OperatingSystem.IsWindows())
            return Directory.Exists(path) ? EntryType.Directory : EntryType.Regular;
        // .NET exposes no file type beyond directory/link, but opening a FIFO would block: ask lstat via the
        // runtime's own native shim (present in every .NET on Unix) for the S_IFMT bits.
        var buffer = new byte[512];
        if (NativeMethods.LStat(path, buffer) != 0)
            return Directory.Exists(path) ? EntryType.Directory : EntryType.Regular;
        var mode = BitConverter.ToInt32(buffer, 4) & 0xF000;
        return mode switch
        {
            0x8000 => EntryType.Regular,
            0x4000 => EntryType.Directory,
            0xA000 => EntryType.Symlink,
            0x1000 => EntryType.Fifo,
            0x2000 => EntryType.CharacterDevice,
            0x6000 => EntryType.BlockDevice,
            0xC000 => EntryType.Socket,
            _ => EntryType.Unknown,
        };
    }

    private static class NativeMethods
    {
#pragma warning disable SYSLIB1054 // one trivial call into the runtime's shim
        [DllImport("libSystem.Native", EntryPoint = "SystemNative_LStat", SetLastError = true)]
        internal static extern int LStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] output);
#pragma warning restore SYSLIB1054
    }
}
