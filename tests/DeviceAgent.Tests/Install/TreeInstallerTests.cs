using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Tests.Install;

public sealed class TreeInstallerTests
{
    private sealed class Crash(string at) : CrashPoints
    {
        public override void Reached(string point)
        {
            if (point == at) throw new SimulatedCrash(point);
        }
    }

    private sealed class SimulatedCrash(string point) : Exception(point);

    private static Dictionary<string, string> Tree(string root) =>
        TreeInventory.Scan(root).ToDictionary(e => e.Path, e => e.Sha256);

    private static void WriteOld(TestDevice d)
    {
        Directory.CreateDirectory(Path.Combine(d.Layout.Client, "bin"));
        File.WriteAllText(Path.Combine(d.Layout.Client, "bin", "app"), "old app");
        File.WriteAllText(Path.Combine(d.Layout.Client, "old-only.txt"), "gone in v2");
        d.Hidden.WriteInstalledVersion(new InstalledVersion(1, "1.0"));
    }

    private static string StageNew(TreeInstaller installer)
    {
        var staging = installer.PrepareStaging();
        Directory.CreateDirectory(Path.Combine(staging, "bin"));
        File.WriteAllText(Path.Combine(staging, "bin", "app"), "new app");
        File.WriteAllText(Path.Combine(staging, "new-only.txt"), "added in v2");
        return TreeInventory.Digest(TreeInventory.Scan(staging));
    }

    [Fact]
    public async Task A_checked_commit_runs_the_check_at_the_installed_path_with_the_old_tree_parked()
    {
        using var d = new TestDevice();
        WriteOld(d);
        var old = Tree(d.Layout.Client);
        var installer = new TreeInstaller(d.Layout, d.Hidden);
        var digest = StageNew(installer);
        var expected = Tree(d.Layout.Staging);
        string? seen = null;
        var result = await installer.CommitCheckedAsync(new InstalledVersion(2, "2.0"), digest, null, (tree, _) =>
        {
            seen = tree;
            Assert.Equal(expected, Tree(tree));
            Assert.Equal(old, Tree(d.Layout.Retired)); // kept until the new version is healthy
            Assert.Equal(1, d.Hidden.ReadInstalledVersion().VersionId);
            return Task.FromResult<string?>(null);
        }, CancellationToken.None);
        Assert.Null(result);
        Assert.Equal(d.Layout.Client, seen);
        Assert.Equal(expected, Tree(d.Layout.Client));
        Assert.Equal(new InstalledVersion(2, "2.0"), d.Hidden.ReadInstalledVersion());
        Assert.False(Directory.Exists(d.Layout.Retired));
        Assert.False(File.Exists(d.Layout.Journal));
    }

    [Fact]
    public async Task A_failed_check_puts_the_previous_version_back()
    {
        using var d = new TestDevice();
        WriteOld(d);
        var old = Tree(d.Layout.Client);
        var installer = new TreeInstaller(d.Layout, d.Hidden);
        var digest = StageNew(installer);
        var result = await installer.CommitCheckedAsync(new InstalledVersion(2, "2.0"), digest, null,
            (_, _) => Task.FromResult<string?>("exit code 3: cannot bind"), CancellationToken.None);
        Assert.Equal("exit code 3: cannot bind", result);
        Assert.Equal(old, Tree(d.Layout.Client));
        Assert.Equal(1, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.False(Directory.Exists(d.Layout.Retired));
        Assert.False(Directory.Exists(d.Layout.Staging));
        Assert.False(File.Exists(d.Layout.Journal));
    }

    [Fact]
    public async Task A_first_install_that_fails_its_check_leaves_no_client_tree_installed()
    {
        using var d = new TestDevice();
        d.Hidden.WriteInstalledVersion(InstalledVersion.None);
        var installer = new TreeInstaller(d.Layout, d.Hidden);
        var digest = StageNew(installer);
        Assert.NotNull(await installer.CommitCheckedAsync(new InstalledVersion(1, "1.0"), digest, null,
            (_, _) => Task.FromResult<string?>("unhealthy"), CancellationToken.None));
        Assert.Empty(Tree(d.Layout.Client));
        Assert.Equal(0, d.Hidden.ReadInstalledVersion().VersionId);
    }

    /// <summary>Crash points of a checked install; <c>check</c> is a kill while the health check runs; true when the new version must survive.</summary>
    public static TheoryData<string, bool, bool> CheckedPoints => new()
    {
        { CrashPoints.JournalWritten, true, false },
        { CrashPoints.OldRetired, true, false },
        { CrashPoints.NewInPlace, true, false },
        { "check", true, false },
        { CrashPoints.VersionRecorded, true, true },
        { CrashPoints.JournalRemoved, true, true },
        { CrashPoints.NewInPlace, false, false },
        { "check", false, false },
        { CrashPoints.UnhealthyRemoved, false, false },
    };

    [Theory]
    [MemberData(nameof(CheckedPoints))]
    public async Task A_crash_during_a_checked_install_recovers_to_exactly_one_version_that_passed_its_checks(string point, bool healthy, bool newExpected)
    {
        using var d = new TestDevice();
        WriteOld(d);
        var old = Tree(d.Layout.Client);
        var crashing = new TreeInstaller(d.Layout, d.Hidden, new Crash(point));
        var digest = StageNew(crashing);
        var staged = Tree(d.Layout.Staging);
        await Assert.ThrowsAsync<SimulatedCrash>(() => crashing.CommitCheckedAsync(new InstalledVersion(2, "2.0"), digest, null,
            (_, _) => point == "check" ? throw new SimulatedCrash(point) : Task.FromResult(healthy ? null : "unhealthy"), CancellationToken.None));

        var outcome = new TreeInstaller(d.Layout, d.Hidden).Recover();
        Assert.Equal(point == CrashPoints.JournalRemoved ? RecoveryOutcome.Clean : newExpected ? RecoveryOutcome.RolledForward : RecoveryOutcome.RolledBack, outcome);
        Assert.Equal(newExpected ? staged : old, Tree(d.Layout.Client));
        Assert.Equal(newExpected ? 2 : 1, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.False(Directory.Exists(d.Layout.Retired));
        Assert.False(Directory.Exists(d.Layout.Staging));
        Assert.False(File.Exists(d.Layout.Journal));
    }

    [Fact]
    public void Commit_swaps_the_whole_tree_and_records_the_version()
    {
        using var d = new TestDevice();
        WriteOld(d);
        var installer = new TreeInstaller(d.Layout, d.Hidden);
        var digest = StageNew(installer);
        installer.Commit(new InstalledVersion(2, "2.0"), digest);
        Assert.Equal(digest, TreeInventory.Digest(TreeInventory.Scan(d.Layout.Client)));
        Assert.Equal(2, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.False(File.Exists(d.Layout.Journal));
        Assert.False(Directory.Exists(d.Layout.Staging));
        Assert.False(Directory.Exists(d.Layout.Retired));
    }

    public static TheoryData<string> SwapPoints => new(CrashPoints.JournalWritten, CrashPoints.OldRetired, CrashPoints.NewInPlace, CrashPoints.VersionRecorded, CrashPoints.JournalRemoved);

    [Theory]
    [MemberData(nameof(SwapPoints))]
    public void A_crash_during_the_swap_rolls_forward_to_exactly_the_new_tree(string point)
    {
        using var d = new TestDevice();
        WriteOld(d);
        var crashing = new TreeInstaller(d.Layout, d.Hidden, new Crash(point));
        var digest = StageNew(crashing);
        var expected = Tree(d.Layout.Staging);
        Assert.Throws<SimulatedCrash>(() => crashing.Commit(new InstalledVersion(2, "2.0"), digest));

        var outcome = new TreeInstaller(d.Layout, d.Hidden).Recover();
        Assert.Equal(point == CrashPoints.JournalRemoved ? RecoveryOutcome.Clean : RecoveryOutcome.RolledForward, outcome);
        Assert.Equal(expected, Tree(d.Layout.Client));
        Assert.Equal(new InstalledVersion(2, "2.0"), d.Hidden.ReadInstalledVersion());
        Assert.False(Directory.Exists(d.Layout.Retired));
        Assert.False(File.Exists(d.Layout.Journal));
    }

    [Fact]
    public void A_crash_while_staging_keeps_exactly_the_old_tree()
    {
        using var d = new TestDevice();
        WriteOld(d);
        var expected = Tree(d.Layout.Client);
        var installer = new TreeInstaller(d.Layout, d.Hidden);
        StageNew(installer); // staged, never committed: the process died before the journal

        Assert.Equal(RecoveryOutcome.Clean, new TreeInstaller(d.Layout, d.Hidden).Recover());
        Assert.Equal(expected, Tree(d.Layout.Client));
        Assert.Equal(1, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.False(Directory.Exists(d.Layout.Staging));
    }

    [Fact]
    public void An_unreadable_journal_puts_the_old_tree_back()
    {
        using var d = new TestDevice();
        WriteOld(d);
        var expected = Tree(d.Layout.Client);
        var installer = new TreeInstaller(d.Layout, d.Hidden, new Crash(CrashPoints.OldRetired));
        var digest = StageNew(installer);
        Assert.Throws<SimulatedCrash>(() => installer.Commit(new InstalledVersion(2, "2.0"), digest));
        File.WriteAllText(d.Layout.Journal, "{garbage");

        Assert.Equal(RecoveryOutcome.RolledBack, new TreeInstaller(d.Layout, d.Hidden).Recover());
        Assert.Equal(expected, Tree(d.Layout.Client));
        Assert.Equal(1, d.Hidden.ReadInstalledVersion().VersionId);
    }

    [Fact]
    public void First_install_without_an_old_tree_works_and_survives_a_crash()
    {
        using var d = new TestDevice();
        var installer = new TreeInstaller(d.Layout, d.Hidden, new Crash(CrashPoints.NewInPlace));
        var digest = StageNew(installer);
        var expected = Tree(d.Layout.Staging);
        Assert.Throws<SimulatedCrash>(() => installer.Commit(new InstalledVersion(1, "1.0"), digest));
        new TreeInstaller(d.Layout, d.Hidden).Recover();
        Assert.Equal(expected, Tree(d.Layout.Client));
        Assert.Equal(1, d.Hidden.ReadInstalledVersion().VersionId);
    }

    [Fact]
    public void Resolve_inside_refuses_paths_that_escape()
    {
        using var t = new TempDir();
        foreach (var bad in new[] { "../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\b", "" })
            Assert.Throws<InvalidDataException>(() => TreeInventory.ResolveInside(t.Path, bad));
        Assert.StartsWith(t.Path, TreeInventory.ResolveInside(t.Path, "a/b/c"));
    }
}
