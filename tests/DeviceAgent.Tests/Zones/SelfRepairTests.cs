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

    [Fact]
    public void The_hidden_backup_is_sealed_compressed_and_a_backup_sealed_uncompressed_still_restores()
    {
        using var d = new TestDevice();
        var big = new byte[200_000];
        for (var i = 0; i < big.Length; i++) big[i] = (byte)(i % 97 < 60 ? 'a' + i % 26 : i * 31);
        File.WriteAllBytes(Path.Combine(d.Layout.FreeUpdater, "lib", "big.so"), big);
        var bundle = UpdaterBundle.FromFolder(d.Layout.FreeUpdater);
        SelfRepair.Seal(d.Layout, d.Hidden, bundle, "2.0", null);
        var sealedBytes = d.Hidden.Read(HiddenItem.UpdaterBackup).Value!;
        Assert.True(sealedBytes.AsSpan().StartsWith("OUB3"u8));
        Assert.True(sealedBytes.Length < bundle.ToUncompressedBytes().Length / 2, $"sealed backup {sealedBytes.Length} bytes, uncompressed {bundle.ToUncompressedBytes().Length}");
        Assert.Equal(bundle.Digest, UpdaterBundle.TryParse(sealedBytes)!.Digest);

        // A device sealed before compression keeps its OUB2 backup until the next seal; it still restores.
        var seal = UpdaterSeal.Read(d.Hidden)!;
        d.Hidden.Write(HiddenItem.UpdaterBackup, bundle.ToUncompressedBytes());
        d.Hidden.Write(HiddenItem.UpdaterDigest, (seal with { BackupSha256 = UpdaterSeal.HashFile(d.Layout.Hidden(HiddenItem.UpdaterBackup)) }).Format());
        File.WriteAllText(Path.Combine(d.Layout.FreeUpdater, "lib", "big.so"), "damaged");
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, new SelfRepair(d.Layout, d.Hidden).Run().Outcome);
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(d.Layout.FreeUpdater, "lib", "big.so")));

        // A compressed backup that does not decompress is damage, not a crash.
        var truncated = UpdaterBundle.TryParse([.. "OUB3"u8, .. sealedBytes.AsSpan(4, 40)]);
        Assert.Null(truncated);
    }

    /// <summary>A clock that runs ahead, so files written by the test count as settled for the stat index.</summary>
    private sealed class Later(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    [Fact]
    public void Through_the_stat_index_an_intact_updater_is_not_read_and_damage_with_the_mtime_put_back_is_still_found()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var d = new TestDevice();
        var later = new Later(StatIndex.SettleTime + TimeSpan.FromSeconds(1));
        StatIndex Index() => StatIndex.Open(d.Layout.UpdaterStatIndex, d.Hidden, "updater", later);
        var first = Index();
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden, first).Run().Outcome);
        Assert.Equal(3, first.Hashed); // two updater files and the sealed backup
        var second = Index();
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden, second).Run().Outcome);
        Assert.Equal((0, 3), (second.Hashed, second.Reused));

        // Same length, other bytes, mtime put back: only the ctime shows it.
        var exe = Path.Combine(d.Layout.FreeUpdater, "updater.bin");
        var mtime = File.GetLastWriteTimeUtc(exe);
        var original = File.ReadAllBytes(exe);
        var bytes = (byte[])original.Clone();
        bytes[3] ^= 0x20;
        using (var fs = new FileStream(exe, FileMode.Open, FileAccess.Write)) fs.Write(bytes);
        File.SetLastWriteTimeUtc(exe, mtime);
        var third = Index();
        var r = new SelfRepair(d.Layout, d.Hidden, third).Run();
        Assert.Equal(SelfRepairOutcome.RestoredFromHidden, r.Outcome);
        Assert.Equal(1, third.Hashed);
        Assert.Equal(original, File.ReadAllBytes(exe));

        // An index that is not this device's (or was edited) opens empty: everything is read again.
        var index = d.Layout.UpdaterStatIndex;
        var sealedIndex = File.ReadAllBytes(index);
        sealedIndex[^1] ^= 1;
        File.WriteAllBytes(index, sealedIndex);
        var fourth = Index();
        Assert.Equal(SelfRepairOutcome.Intact, new SelfRepair(d.Layout, d.Hidden, fourth).Run().Outcome);
        Assert.Equal(3, fourth.Hashed);
    }
}
