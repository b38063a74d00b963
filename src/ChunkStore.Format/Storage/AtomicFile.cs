using System.Security.Cryptography;

namespace Orchestrator.ChunkStore.Storage;

/// <summary>
/// Atomic file replacement: write a temp file next to the target, fsync it, rename it over the target, fsync
/// the directory. A reader (or a crash) sees the old file or the new one, never a torn one.
/// </summary>
public static class AtomicFile
{
    /// <summary>Marker in temp file names: <c>&lt;name&gt;.tmp-&lt;random&gt;</c>.</summary>
    public const string TempMarker = ".tmp-";

    /// <summary>Writes <paramref name="content"/> to <paramref name="path"/> atomically (replacing any old file).</summary>
    /// <param name="path">Target file.</param>
    /// <param name="content">New content.</param>
    /// <param name="ownerOnly">Create with mode 0600 (secrets) instead of 0644.</param>
    /// <param name="syncDirectory">fsync the directory after the rename; callers batching many writes may do it once at the end.</param>
    /// <param name="syncFile">fsync the file before the rename; only callers that make the whole filesystem durable
    /// later (<see cref="SyncFileSystem"/>) before anything refers to the file may skip it.</param>
    public static void Write(string path, ReadOnlySpan<byte> content, bool ownerOnly = false, bool syncDirectory = true, bool syncFile = true)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = TempPathFor(path);
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows())
                options.UnixCreateMode = ownerOnly
                    ? UnixFileMode.UserRead | UnixFileMode.UserWrite
                    : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                if (syncFile) stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        if (syncDirectory) SyncDirectory(dir);
    }

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> only if no file is there. Returns false when
    /// the file already existed (its content is left alone). Content-addressed objects use this: an existing
    /// file with the same name has the same bytes.
    /// </summary>
    public static bool WriteIfAbsent(string path, ReadOnlySpan<byte> content, bool syncDirectory = true, bool syncFile = true)
    {
        // A same-named file of the wrong size can only be the torn result of a power loss before the data was
        // flushed (content-addressed names never legitimately differ in size): replace it.
        var existing = new FileInfo(path);
        if (existing.Exists && existing.Length == content.Length) return false;
        Write(path, content, ownerOnly: false, syncDirectory, syncFile);
        return true;
    }

    /// <summary>
    /// Makes every write to the filesystem holding <paramref name="directory"/> durable with one <c>syncfs</c>
    /// (Linux). Returns false where that is unavailable, so the caller must have fsynced each file itself.
    /// </summary>
    public static bool SyncFileSystem(string directory)
    {
        if (!OperatingSystem.IsLinux()) return false;
        var fd = NativeMethods.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return false;
        try { return NativeMethods.syncfs(fd) == 0; }
        finally { NativeMethods.close(fd); }
    }

    /// <summary>fsyncs a directory so renames inside it are durable (no-op where the OS does not support it).</summary>
    public static void SyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows()) return;
        // .NET has no API to fsync a directory, so ask libc directly. Failures are ignored: some filesystems
        // refuse to open or flush directories, and the rename itself is still atomic there.
        var fd = NativeMethods.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return;
        NativeMethods.fsync(fd);
        NativeMethods.close(fd);
    }

    private static class NativeMethods
    {
#pragma warning disable SYSLIB1054 // DllImport is fine for three trivial libc calls
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        internal static extern int open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        internal static extern int fsync(int fd);

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        internal static extern int close(int fd);

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        internal static extern int syncfs(int fd);
#pragma warning restore SYSLIB1054
    }

    /// <summary>True when <paramref name="fileName"/> is a temp file left by an interrupted write.</summary>
    public static bool IsTempFile(string fileName) => fileName.Contains(TempMarker, StringComparison.Ordinal);

    private static string TempPathFor(string path) =>
        path + TempMarker + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
