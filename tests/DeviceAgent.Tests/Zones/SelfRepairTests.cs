using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Tests.Zones;

public sealed class SelfRepairTests
{
    private static string FreeDigest(TestDevice d) => TreeInventory.Digest(TreeInventory.Scan(d.Layout.FreeUpdater));
    private static string VirtualDigest(TestDevice d) => TreeInventory.Digest(TreeInventory.Scan(d.Layout.VirtualUpdater));

    [Fact]
    public void Intact_updater_is_left_alone()
    {
        using var d = new TestDevice();
        var r = new SelfRepair(d.Layout, d.Hidden).Run();
        Assert.Equal(SelfRepairOutcome.Intact, r.Outcome);
        Assert.Empty(r.Warnings);
        Assert.Equal(VirtualDigest(d), FreeDigest(d));
    }

    [Fact]
    public void Damaged_missing_and_extra_files_are_restored_from_the_hidden_backup()
    {
        using var d = new TestDevice();
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"), "malware");
        File.Delete(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so"));
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "dropped.sh"), "extra");
        var r = new SelfRepair(d.Layout, d.Hidden).Run();
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, r.Outcome);
        Assert.Equal(["dropped.sh", "lib/helper.so", "updater.bin"], r.Changed.Order(StringComparer.Ordinal));
        Assert.Equal(VirtualDigest(d), FreeDigest(d));
    }

    [Fact]
    public void Whole_free_updater_missing_is_restored()
    {
        using var d = new TestDevice();
        Directory.Delete(d.Layout.FreeUpdater, recursive: true);
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
        Assert.Equal(VirtualDigest(d), FreeDigest(d));
    }

    [Fact]
    public void Damaged_backup_with_intact_free_copy_is_rebuilt_from_the_free_copy()
    {
        using var d = new TestDevice();
        File.WriteAllBytes(d.Layout.Hidden(HiddenItem.UpdaterBackup), [1, 2, 3]);
        var r = new SelfRepair(d.Layout, d.Hidden).Run();
        Assert.Equal(SelfRepairOutcome.BackupRebuilt, r.Outcome);
        Assert.Contains(r.Warnings, w => w.Contains("rebuilt from the verified free-zone updater"));
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
        Assert.Equal(HiddenItemState.Ok, d.Hidden.Read(HiddenItem.UpdaterBackup).State);
    }

    [Fact]
    public void A_changed_mode_is_damage_and_restore_writes_the_recorded_modes()
    {
        using var d = new TestDevice();
        var exe = Path.Combine(d.Layout.FreeUpdater, "updater.bin");
        Assert.Equal((UnixFileMode)0b111_101_101, UpdaterTree.ModeOf(exe));
        UpdaterTree.SetMode(exe, (UnixFileMode)0b100_111_111_111); // 4777
        var r = new SelfRepair(d.Layout, d.Hidden).Run();
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, r.Outcome);
        Assert.Equal(["updater.bin"], r.Changed);
        Assert.Equal((UnixFileMode)0b111_101_101, UpdaterTree.ModeOf(exe));

        File.Delete(exe);
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
        Assert.Equal((UnixFileMode)0b111_101_101, UpdaterTree.ModeOf(exe));
    }

    [Fact]
    public void Both_damaged_are_restored_from_the_virtual_copy()
    {
        using var d = new TestDevice();
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"), "corrupt");
        File.Delete(d.Layout.Hidden(HiddenItem.UpdaterBackup));
        var generation = UpdaterGeneration.Read(d.Hidden).Generation;
        var r = new SelfRepair(d.Layout, d.Hidden).Run("/etc/agent.json");
        Assert.Equal(SelfRepairOutcome.RestoredFromVirtual, r.Outcome);
        Assert.Equal(VirtualDigest(d), FreeDigest(d));
        Assert.Equal(generation + 1, UpdaterGeneration.Read(d.Hidden).Generation);
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
    }

    [Fact]
    public void A_damaged_virtual_copy_is_not_used_and_nothing_is_changed()
    {
        using var d = new TestDevice();
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"), "corrupt");
        File.Delete(d.Layout.Hidden(HiddenItem.UpdaterBackup));
        File.WriteAllText(Path.Combine(d.Layout.VirtualUpdater, "lib", "helper.so"), "rotten image");
        var r = new SelfRepair(d.Layout, d.Hidden).Run("/etc/agent.json");
        Assert.Equal(SelfRepairOutcome.Unrecoverable, r.Outcome);
        Assert.Contains("differs from the image sealed at provisioning", r.Message);
        Assert.Equal("corrupt", File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin")));
    }

    [Fact]
    public void Recovery_rebuilds_trust_root_but_neither_the_version_floor_nor_device_secrets()
    {
        using var d = new TestDevice();
        d.Hidden.WriteInstalledVersion(new InstalledVersion(5, "1.5"));
        File.WriteAllBytes(d.Layout.Hidden(HiddenItem.TrustRoot), [0]);
        File.WriteAllBytes(d.Layout.Hidden(HiddenItem.InstalledVersion), [0]);
        File.Delete(d.Layout.Hidden(HiddenItem.DeviceCredential));
        var report = new ZoneProvisioner(d.Layout, d.Hidden).RecoverFromVirtual();
        Assert.Equal(d.TrustRoot, d.Hidden.ReadRequired(HiddenItem.TrustRoot));
        // The version record is the rollback floor: recovery leaves a lost one unknown instead of resetting it to 0 (issue 14).
        Assert.Null(d.Hidden.ReadVersionRecord());
        Assert.Equal([HiddenZone.FileName(HiddenItem.DeviceCredential)], report.NeedsProvisioning);
    }
}
