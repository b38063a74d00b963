using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Install;

/// <summary>How a start found the install state.</summary>
public enum RecoveryOutcome
{
    /// <summary>No interrupted swap.</summary>
    Clean,
    /// <summary>An interrupted swap was completed: the new version is in place.</summary>
    RolledForward,
    /// <summary>An unreadable journal: the old tree was put back.</summary>
    RolledBack,
}

/// <summary>
/// Installs a fully staged tree by swapping directories under a journal, so that after a crash at any instant the
/// client folder is exactly the old or exactly the new version (never a mix) and the recorded version matches it.
/// Swap: journal → rename client to retired → rename staging to client → record version → delete journal → delete retired.
/// A health-checked swap runs the check between the renames and recording the version (<see cref="CommitCheckedAsync"/>).
/// </summary>
public sealed class TreeInstaller(ZoneLayout layout, HiddenZone hidden, CrashPoints? crash = null)
{
    private readonly CrashPoints _crash = crash ?? CrashPoints.None;

    /// <summary>Empties and returns the staging folder (left-overs of an abandoned attempt are discarded).</summary>
    public string PrepareStaging()
    {
        DeleteTree(layout.Staging);
        Directory.CreateDirectory(layout.Staging);
        return layout.Staging;
    }

    /// <summary>Swaps the staged tree in. The caller has verified every staged file against the manifest.</summary>
    /// <param name="version">The version being installed.</param>
    /// <param name="inventoryDigest">Digest of the staged tree.</param>
    /// <param name="manifestSha256">SHA-256 of the manifest installed, sealed into the version record.</param>
    public void Commit(InstalledVersion version, string inventoryDigest, string? manifestSha256 = null)
    {
        _manifestSha256 = manifestSha256;
        if (!Directory.Exists(layout.Staging))
            throw new InvalidOperationException($"nothing staged in '{layout.Staging}'");
        SyncTree(layout.Staging);
        DeleteTree(layout.Retired);
        new InstallJournal(1, version.VersionId, version.Version, inventoryDigest).Write(layout.Journal);
        _crash.Reached(CrashPoints.JournalWritten);
        RollForward(version);
    }

    /// <summary>
    /// Swaps the staged tree in and runs <paramref name="healthCheck"/> on it at the installed path (programs that read
    /// their own location see the real one). The previous tree stays parked until the check passed; on failure it is
    /// put back. The journal says the check is pending, so a kill before the check passed recovers to the previous
    /// version and a kill after it rolls forward: either way exactly one version that passed its checks is installed.
    /// </summary>
    /// <returns>Null when the new version is installed, else why its health check failed (the previous version is back).</returns>
    public async Task<string?> CommitCheckedAsync(InstalledVersion version, string inventoryDigest, string? manifestSha256,
        Func<string, CancellationToken, Task<string?>> healthCheck, CancellationToken ct)
    {
        if (!Directory.Exists(layout.Staging))
            throw new InvalidOperationException($"nothing staged in '{layout.Staging}'");
        SyncTree(layout.Staging);
        DeleteTree(layout.Retired);
        var journal = new InstallJournal(1, version.VersionId, version.Version, inventoryDigest, HealthCheckPending: true);
        journal.Write(layout.Journal);
        _crash.Reached(CrashPoints.JournalWritten);
        SwapIn();
        if (await healthCheck(layout.Client, ct) is { } unhealthy)
        {
            RollBack();
            return unhealthy;
        }
        // The commit point of a checked install: from here a kill rolls forward.
        (journal with { HealthCheckPending = false }).Write(layout.Journal);
        _manifestSha256 = manifestSha256;
        RollForward(version);
        return null;
    }

    /// <summary>Run on every start before anything reads the client tree: finishes or undoes an interrupted swap.</summary>
    public RecoveryOutcome Recover()
    {
        InstallJournal? journal;
        try
        {
            journal = InstallJournal.TryRead(layout.Journal);
        }
        catch (InvalidDataException)
        {
            // A journal is written atomically, so this is disk damage; the staged tree cannot be trusted to be
            // complete, so put the old tree back if it was already moved aside.
            if (!Directory.Exists(layout.Client) && Directory.Exists(layout.Retired))
                DurableFile.Rename(layout.Retired, layout.Client);
            DeleteTree(layout.Staging);
            DurableFile.TryDelete(layout.Journal);
            DurableFile.SyncDirectory(layout.Work);
            DeleteTree(layout.Retired);
            return RecoveryOutcome.RolledBack;
        }
        if (journal is null)
        {
            DeleteTree(layout.Staging);
            DeleteTree(layout.Retired);
            return RecoveryOutcome.Clean;
        }
        if (journal.HealthCheckPending)
        {
            RollBack();
            return RecoveryOutcome.RolledBack;
        }
        RollForward(new InstalledVersion(journal.VersionId, journal.Version));
        return RecoveryOutcome.RolledForward;
    }

    /// <summary>
    /// Puts the previous tree back after a swap whose new version is not known to be healthy. A parked tree exists
    /// only after the first rename, so when it exists the client path holds the new version (or nothing); without it
    /// the client path already holds the previous version. The version record was never changed.
    /// </summary>
    private void RollBack()
    {
        if (Directory.Exists(layout.Retired))
        {
            if (Directory.Exists(layout.Client))
            {
                DeleteTree(layout.Staging);
                DurableFile.Rename(layout.Client, layout.Staging);
                _crash.Reached(CrashPoints.UnhealthyRemoved);
            }
            DurableFile.Rename(layout.Retired, layout.Client);
        }
        DurableFile.TryDelete(layout.Journal);
        DurableFile.SyncDirectory(layout.Work);
        DeleteTree(layout.Staging);
    }

    private string? _manifestSha256;

    private void RollForward(InstalledVersion version)
    {
        SwapIn();
        // After a crash the journal knows no manifest hash: the record then pins nothing and the directive pins repairs.
        hidden.WriteInstalledVersion(version, _manifestSha256);
        _manifestSha256 = null;
        _crash.Reached(CrashPoints.VersionRecorded);
        DurableFile.TryDelete(layout.Journal);
        DurableFile.SyncDirectory(layout.Work);
        _crash.Reached(CrashPoints.JournalRemoved);
        DeleteTree(layout.Retired);
    }

    /// <summary>The two renames (old tree parked, staged tree in place), each done only if it has not happened yet.</summary>
    private void SwapIn()
    {
        if (!Directory.Exists(layout.Staging)) return;
        // The second rename has not happened yet. If the first has not either, do it now.
        if (Directory.Exists(layout.Client))
        {
            DeleteTree(layout.Retired);
            DurableFile.Rename(layout.Client, layout.Retired);
            _crash.Reached(CrashPoints.OldRetired);
        }
        else if (!Directory.Exists(layout.Retired))
        {
            // A first install parks an empty tree, so a rollback knows the client path holds the new version.
            Directory.CreateDirectory(layout.Retired);
            DurableFile.SyncDirectory(layout.Work);
        }
        DurableFile.Rename(layout.Staging, layout.Client);
        _crash.Reached(CrashPoints.NewInPlace);
    }

    private static void SyncTree(string root)
    {
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            DurableFile.SyncFile(file);
        foreach (var dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories))
            DurableFile.SyncDirectory(dir);
        DurableFile.SyncDirectory(root);
    }

    private static void DeleteTree(string path)
    {
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
    }
}
