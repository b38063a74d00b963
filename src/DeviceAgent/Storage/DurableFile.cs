using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// The agent's crash-safe file steps beyond <see cref="AtomicFile"/> (which does temp + fsync + rename + directory
/// fsync for whole-file writes): durable renames of files and directories, and file fsync.
/// </summary>
public static class DurableFile
{
    /// <summary>Atomically replaces <paramref name="path"/> (delegates to <see cref="AtomicFile.Write"/>).</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool ownerOnly = false) =>
        AtomicFile.Write(path, bytes, ownerOnly);

    /// <summary>Renames a file or directory and makes the rename durable (fsync of both parent directories).</summary>
    public static void Rename(string from, string to)
    {
        if (Directory.Exists(from)) Directory.Move(from, to);
        else File.Move(from, to);
        var toDir = Path.GetDirectoryName(Path.GetFullPath(to))!;
        var fromDir = Path.GetDirectoryName(Path.GetFullPath(from))!;
        AtomicFile.SyncDirectory(toDir);
        if (fromDir != toDir) AtomicFile.SyncDirectory(fromDir);
    }

    /// <summary>Flushes a file's data to disk.</summary>
    public static void SyncFile(string path)
    {
        // Read access is enough for fsync, and works for files the release marks read-only (mode 0444).
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        RandomAccess.FlushToDisk(handle);
    }

    /// <summary>Flushes a directory's entries to disk (delegates to <see cref="AtomicFile.SyncDirectory"/>).</summary>
    public static void SyncDirectory(string dir) => AtomicFile.SyncDirectory(dir);

    /// <summary>Deletes a file if it exists, ignoring a concurrent disappearance.</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
