using Orchestrator.Messages.Devices;

namespace Orchestrator.Messages.Tests.Devices;

public sealed class DeviceCommandValidationTests
{
    private static readonly DateTimeOffset T = DateTimeOffset.UnixEpoch;

    [Theory]
    [InlineData("a")]
    [InlineData("Dev-01.x_y:z")]
    public void Valid_device_ids_are_accepted(string id) => Assert.Equal(id, new GetDeviceState(id).DeviceId);

    [Fact]
    public void Device_id_length_limit_is_128()
    {
        Assert.Equal(128, new GetDeviceState(new string('a', 128)).DeviceId.Length);
        Assert.Throws<ArgumentException>(() => new GetDeviceState(new string('a', 129)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-dev")]
    [InlineData(".dev")]
    [InlineData("dev 1")]
    [InlineData("dev/1")]
    [InlineData("dév")]
    [InlineData("dev-1\n")] // a regex's $ would match before a final newline
    public void Invalid_device_ids_are_rejected_with_the_rule(string id)
    {
        var e = Assert.Throws<ArgumentException>(() => new GetDeviceState(id));
        Assert.Contains(DeviceIdRules.Pattern, e.Message);
        Assert.Equal("DeviceId", e.ParamName);
    }

    [Fact]
    public void Repair_check_in_without_file_list_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            new CheckIn("d1", "acme", 3, "x", "y", "1.0", "manifests/acme/1.0.json", [], null, T));
        Assert.Contains("DifferingFiles is empty", e.Message);
    }

    [Fact]
    public void Expected_digest_requires_manifest_identity()
    {
        var e = Assert.Throws<ArgumentException>(() => new CheckIn("d1", "acme", 3, "x", "x", null, null, [], null, T));
        Assert.Contains("InstalledManifestPath", e.Message);
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("a/../b")]
    [InlineData("a\\b")]
    public void Differing_file_paths_must_be_relative(string path) =>
        Assert.Throws<ArgumentException>(() => new CheckIn("d1", "acme", 3, "x", "y", "1.0", "m.json", [path], null, T));

    [Fact]
    public void Progress_beyond_total_is_rejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReportProgress("d1", 2, WorkPhase.Download, 11, 10, 0, 0, T));

    [Fact]
    public void Target_version_id_must_be_positive() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new AssignTarget("d1", "acme", "1.0", 0, "m.json", "r1"));

    [Fact]
    public void Negative_rollout_bandwidth_is_rejected_naming_the_field() =>
        Assert.Equal("BandwidthBytesPerSecond",
            Assert.Throws<ArgumentOutOfRangeException>(() => new AssignTarget("d1", "acme", "1.0", 1, "m.json", "r1", -1)).ParamName);

    [Fact]
    public void Tags_with_whitespace_are_rejected_and_duplicates_removed()
    {
        Assert.Throws<ArgumentException>(() => new RegisterDevice("d1", "acme", ["a b"], T));
        Assert.Equal(["a", "b"], new RegisterDevice("d1", "acme", ["a", "b", "a"], T).Tags);
    }

    [Fact]
    public void Needs_repair_only_when_digest_differs_from_a_known_manifest()
    {
        Assert.False(new CheckIn("d1", "acme", 3, "x", null, null, null, [], null, T).NeedsRepair);
        Assert.False(new CheckIn("d1", "acme", 3, "x", "x", "1", "m", [], null, T).NeedsRepair);
        Assert.True(new CheckIn("d1", "acme", 3, "x", "y", "1", "m", ["f"], null, T).NeedsRepair);
    }
}
