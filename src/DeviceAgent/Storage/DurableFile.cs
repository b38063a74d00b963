using System.Runtime.InteropServices;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// Crash-safe file primitives: every write goes to a temp file that is fsynced and then renamed over the target,
/// and the parent directory is fsynced so the rename itself survives a power loss.
/// </summary>
public static partial class DurableFile
{
    /// <summary>Atomically replaces <paramref name="path"/> with <paramref name="bytes"/>.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        SyncDirectory(dir);
    }

    /// <summary>Renames a file or directory and makes the rename durable (fsync of both parent directories).</summary>
    public static void Rename(string from, string to)
    {
        if (Directory.Exists(from)) Directory.Move(from, to);
        else File.Move(from, to);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(to))!);
        var fromDir = Path.GetDirectoryName(Path.GetFullPath(from))!;
        if (fromDir != Path.GetDirectoryName(Path.GetFullPath(to))) SyncDirectory(fromDir);
    }

    /// <summary>Flushes a file's data to disk.</summary>
    public static void SyncFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>Flushes a directory's entries (renames, creates, deletes) to disk. No-op where the OS has no such call.</summary>
    public static void SyncDirectory(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        var fd = Open(dir, 0 /* O_RDONLY */);
        if (fd < 0) return; // best effort: the directory may be on a filesystem that refuses; data files are already synced
        try { _ = FSync(fd); }
        finally { _ = Close(fd); }
    }

    /// <summary>Deletes a file if it exists, ignoring a concurrent disappearance.</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
