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
    public void Damaged_backup_with_intact_free_copy_warns_but_continues()
    {
        using var d = new TestDevice();
        File.WriteAllBytes(d.Layout.Hidden(HiddenItem.UpdaterBackup), [1, 2, 3]);
        var r = new SelfRepair(d.Layout, d.Hidden).Run();
        Assert.Equal(SelfRepairOutcome.Intact, r.Outcome);
        Assert.Contains(r.Warnings, w => w.Contains("recover --from-virtual"));
    }

    [Fact]
    public void Both_damaged_names_the_virtual_zone_recovery_and_recovery_fixes_it()
    {
        using var d = new TestDevice();
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"), "corrupt");
        File.Delete(d.Layout.Hidden(HiddenItem.UpdaterBackup));
        var before = File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"));
        var r = new SelfRepair(d.Layout, d.Hidden).Run("/etc/agent.json");
        Assert.Equal(SelfRepairOutcome.Unrecoverable, r.Outcome);
        Assert.Contains("orch-agent recover --from-virtual --config /etc/agent.json", r.Message);
        Assert.Equal(before, File.ReadAllText(Path.Combine(d.Layout.FreeUpdater, "updater.bin"))); // nothing changed

        var report = new ZoneProvisioner(d.Layout, d.Hidden).RecoverFromVirtual();
        Assert.Empty(report.NeedsProvisioning);
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
        Assert.Equal(VirtualDigest(d), FreeDigest(d));
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
