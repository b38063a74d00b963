using System.Security.Cryptography;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Tests.Zones;

public sealed class HiddenZoneTests
{
    [Fact]
    public void Sealed_items_round_trip_and_are_not_stored_in_the_clear()
    {
        using var d = new TestDevice();
        var (state, value) = d.Hidden.Read(HiddenItem.ContentKey);
        Assert.Equal(HiddenItemState.Ok, state);
        Assert.Equal(d.ContentKey, value);
        var onDisk = File.ReadAllBytes(d.Layout.Hidden(HiddenItem.ContentKey));
        Assert.Equal(-1, onDisk.AsSpan().IndexOf(d.ContentKey));
        Assert.Equal(-1, File.ReadAllBytes(d.Layout.Hidden(HiddenItem.DeviceCredential)).AsSpan().IndexOf("device-secret-1"u8));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(d.Layout.Hidden(HiddenItem.ContentKey)));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(d.Config.Zones.Hidden));
        }
    }

    [Fact]
    public void A_flipped_bit_makes_the_item_damaged()
    {
        using var d = new TestDevice();
        var path = d.Layout.Hidden(HiddenItem.TrustRoot);
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        Assert.Equal(HiddenItemState.Damaged, d.Hidden.Read(HiddenItem.TrustRoot).State);
        var e = Assert.Throws<HiddenZoneException>(() => d.Hidden.ReadRequired(HiddenItem.TrustRoot));
        Assert.Contains("recover --from-virtual", e.Message);
    }

    [Fact]
    public void Items_cannot_be_swapped_for_each_other()
    {
        using var d = new TestDevice();
        File.Copy(d.Layout.Hidden(HiddenItem.ContentKey), d.Layout.Hidden(HiddenItem.TrustRoot), overwrite: true);
        Assert.Equal(HiddenItemState.Damaged, d.Hidden.Read(HiddenItem.TrustRoot).State);
    }

    [Fact]
    public void Another_machine_secret_cannot_open_the_hidden_zone()
    {
        using var d = new TestDevice();
        File.WriteAllBytes(d.Config.MachineSecretFile, RandomNumberGenerator.GetBytes(32));
        using var otherKey = DeviceKey.Derive(d.Config.MachineSecretFile, d.Config.DeviceId);
        var other = new HiddenZone(d.Layout, otherKey);
        Assert.Equal(HiddenItemState.Damaged, other.Read(HiddenItem.DeviceCredential).State);
    }

    [Fact]
    public void Missing_machine_secret_is_a_clear_error()
    {
        using var d = new TestDevice();
        File.Delete(d.Config.MachineSecretFile);
        var e = Assert.Throws<HiddenZoneException>(() => DeviceKey.Derive(d.Config.MachineSecretFile, d.Config.DeviceId));
        Assert.Contains("machineSecretFile", e.Message);
    }

    [Fact]
    public void Installed_version_round_trips_and_starts_at_zero()
    {
        using var d = new TestDevice();
        Assert.Equal(0, d.Hidden.ReadInstalledVersion().VersionId);
        d.Hidden.WriteInstalledVersion(new InstalledVersion(7, "2.1.0"));
        Assert.Equal(new InstalledVersion(7, "2.1.0"), d.Hidden.ReadInstalledVersion());
    }
}
