namespace Orchestrator.Node.Hosting;

/// <summary>
/// An exclusive lock on a node's data folder, held for the node's lifetime. Two nodes on one folder would share its
/// SQLite journal and each form its own cluster, so both would write the same device histories (unique-key failures,
/// rollouts that disagree). The lock is the operating system's (released when the process dies, even by kill -9);
/// who holds it is written next to it, because the locked file itself cannot be read by another process.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    /// <summary>Lock file inside the data folder.</summary>
    public const string LockFileName = "node.lock";

    /// <summary>Who holds the lock: process id, host, start time, addresses.</summary>
    public const string OwnerFileName = "node.lock.owner";

    private readonly FileStream _lock;
    private readonly string _ownerFile;

    private DataDirectoryLock(FileStream lockFile, string ownerFile)
    {
        _lock = lockFile;
        _ownerFile = ownerFile;
    }

    /// <summary>Takes the lock or throws <see cref="NodeStartupException"/> naming the holder.</summary>
    /// <param name="dataDirectory">The node's data folder (created when missing).</param>
    /// <param name="describe">What this node is (addresses), recorded for the next one that finds the folder taken.</param>
    public static DataDirectoryLock Acquire(string dataDirectory, string describe)
    {
        var full = Path.GetFullPath(dataDirectory);
        Directory.CreateDirectory(full);
        var lockPath = Path.Combine(full, LockFileName);
        var ownerPath = Path.Combine(full, OwnerFileName);
        FileStream stream;
        try
        {
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            var holder = File.Exists(ownerPath) ? File.ReadAllText(ownerPath).Trim() : "an unknown process";
            throw new NodeStartupException(
                $"data folder '{full}' is in use by another node ({holder}); stop that node, or give this one its own folder with --Node:DataDirectory=DIR.");
        }
        var owner = $"pid {Environment.ProcessId} on {Environment.MachineName}, started {DateTimeOffset.UtcNow:O}, {describe}";
        File.WriteAllText(ownerPath, owner + Environment.NewLine);
        return new DataDirectoryLock(stream, ownerPath);
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose()
    {
        try { File.Delete(_ownerFile); }
        catch (IOException) { /* the next owner overwrites it */ }
        _lock.Dispose();
    }
}

/// <summary>The node cannot start; the message is one line naming the cause and the fix (exit code 2).</summary>
public sealed class NodeStartupException(string message, Exception? inner = null) : Exception(message, inner);
