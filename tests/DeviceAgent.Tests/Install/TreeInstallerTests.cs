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
