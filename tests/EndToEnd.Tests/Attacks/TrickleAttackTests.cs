using System.Diagnostics;
using System.Text.Json.Nodes;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>
/// The minimum-rate floor is the agent's own: a gateway that hands out a tiny grant and then trickles chunks is cut off
/// at the configured floor (the grant's pacing is the agent's own waiting and never counts as the server's slowness).
/// </summary>
public sealed class TrickleAttackTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_tiny_grant_does_not_license_a_trickling_gateway()
    {
        // The refused attack is a failed attempt; a short announced backoff lets the honest run that follows start at once.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:RetryBase"] = "00:00:00.100",
            ["Devices:RetryCap"] = "00:00:00.500",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        await using var hostile = await HostileGateway.StartAsync(node.BaseUrl);
        var secret = await node.ProvisionAsync("dev-trickle");
        using var device = new TestDevice(hostile.BaseUrl, credential: secret, deviceId: "dev-trickle",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1, MinBytesPerSecond = 4096, MinRateWindowSeconds = 2 });
        await node.AssignAsync("dev-trickle", "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        // The node's own answer with its grant cut to 64 B/s, then every chunk sent at 256 B/s: above the grant, far
        // below the agent's 4096 B/s floor.
        hostile.OnCheckIn = async c =>
        {
            var (status, body) = await hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            var answer = (JsonObject)JsonNode.Parse(body)!;
            if (answer["grant"] is JsonObject grant) grant["bytesPerSecond"] = 64;
            return (status, answer.ToJsonString());
        };
        hostile.TrickleChunksBytesPerSecond = 256;
        var clock = Stopwatch.StartNew();
        var attack = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine(attack.Output + attack.Error);
        Assert.NotEqual(0, attack.ExitCode);
        Assert.Contains("is below the minimum rate of 4096 B/s", attack.Output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the trickle held the agent for {clock.Elapsed}");
        Assert.False(Directory.Exists(device.Layout.Client) && Directory.EnumerateFiles(device.Layout.Client, "*", SearchOption.AllDirectories).Any(),
            "nothing may be installed from a trickling gateway");
        var state = await node.StateAsync("dev-trickle");
        Assert.Equal(0, state.InstalledVersionId);

        hostile.OnCheckIn = null;
        hostile.TrickleChunksBytesPerSecond = null;
        var honest = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine(honest.Output + honest.Error);
        Assert.Equal(0, honest.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));
    }
}
