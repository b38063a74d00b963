using System.Collections.Concurrent;

namespace Orchestrator.DeviceAgent.Install;

/// <summary>
/// Named points in the install flow where tests kill the agent to prove it is power-loss safe. Production runs
/// with <see cref="None"/>; <see cref="FromEnvironment"/> reads <c>ORCH_AGENT_CRASH_AT=&lt;point&gt;[#&lt;n&gt;]</c> and
/// kills the process (SIGKILL, no cleanup, no finally blocks) the n-th time (default 1st) that point is reached.
/// </summary>
public class CrashPoints
{
    /// <summary>Environment variable read by <see cref="FromEnvironment"/>.</summary>
    public const string EnvironmentVariable = "ORCH_AGENT_CRASH_AT";

    /// <summary>A downloaded chunk was written into its place(s) in the build.</summary>
    public const string ChunkPlaced = "chunk-placed";
    /// <summary>A file was put into staging (linked, or copied and verified).</summary>
    public const string FileStaged = "file-staged";
    /// <summary>The install journal was written.</summary>
    public const string JournalWritten = "journal-written";
    /// <summary>The old tree was moved aside.</summary>
    public const string OldRetired = "old-retired";
    /// <summary>The new tree was moved into place.</summary>
    public const string NewInPlace = "new-in-place";
    /// <summary>The new version ID was recorded.</summary>
    public const string VersionRecorded = "version-recorded";
    /// <summary>The journal was removed.</summary>
    public const string JournalRemoved = "journal-removed";

    /// <summary>The new release passed its health check at the installed path; the journal still says it is unchecked.</summary>
    public const string HealthChecked = "health-checked";
    /// <summary>A release that failed its health check was moved out of the installed path; the previous one is not back yet.</summary>
    public const string UnhealthyRemoved = "unhealthy-removed";
    /// <summary>The staged updater release passed its self-test; it is not committed to the release track yet.</summary>
    public const string UpdaterStagedSelfTested = "updater-staged-self-tested";
    /// <summary>A file of the free-zone updater was replaced by the new release's (the copy is half old, half new).</summary>
    public const string UpdaterFileRestored = "updater-file-restored";
    /// <summary>A new updater release passed its self-test, before anything of the working updater changed.</summary>
    public const string UpdaterSelfTested = "updater-self-tested";
    /// <summary>The new updater's hidden backup was written; the sealed record still names the previous updater.</summary>
    public const string UpdaterBackupWritten = "updater-backup-written";
    /// <summary>The sealed record names the new updater; the free-zone copy is still the previous one.</summary>
    public const string UpdaterRecordSealed = "updater-record-sealed";
    /// <summary>The free-zone updater was replaced by the new one.</summary>
    public const string UpdaterSwapped = "updater-swapped";

    /// <summary>Every point, in flow order.</summary>
    public static readonly IReadOnlyList<string> All = [ChunkPlaced, FileStaged, JournalWritten, OldRetired, NewInPlace, VersionRecorded, JournalRemoved];

    /// <summary>The points of an install whose release declares a health check, in flow order (the last one only when it fails).</summary>
    public static readonly IReadOnlyList<string> HealthCheckedInstall = [FileStaged, JournalWritten, OldRetired, NewInPlace, HealthChecked, VersionRecorded, JournalRemoved, UnhealthyRemoved];

    /// <summary>The points of an updater swap, in flow order (after the install points of the updater release itself).</summary>
    public static readonly IReadOnlyList<string> UpdaterSwap =
        [UpdaterStagedSelfTested, UpdaterSelfTested, UpdaterBackupWritten, UpdaterRecordSealed, UpdaterFileRestored, UpdaterSwapped];

    /// <summary>No crashes.</summary>
    public static readonly CrashPoints None = new();

    /// <summary>Called by the flow at each point.</summary>
    public virtual void Reached(string point) { }

    /// <summary>The configured crasher, or <see cref="None"/> when the variable is unset.</summary>
    public static CrashPoints FromEnvironment()
    {
        var spec = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(spec)) return None;
        var parts = spec.Split('#', 2);
        var n = parts.Length == 2 && int.TryParse(parts[1], out var k) && k > 0 ? k : 1;
        return new KillAt(parts[0], n);
    }

    private sealed class KillAt(string point, int occurrence) : CrashPoints
    {
        private readonly ConcurrentDictionary<string, int> _seen = new();

        public override void Reached(string p)
        {
            if (p != point) return;
            if (_seen.AddOrUpdate(p, 1, (_, c) => c + 1) != occurrence) return;
            Console.Error.WriteLine($"orch-agent: crash injected at {p}#{occurrence}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
