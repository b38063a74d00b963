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
        await using var rig = await HostileGatewayRig.StartAsync("dev-trickle",
            TestDevice.FastDownloads with { MaxSessionAttempts = 1, MinBytesPerSecond = 4096, MinRateWindowSeconds = 2 },
            new Dictionary<string, string?> { ["Devices:RetryBase"] = "00:00:00.100", ["Devices:RetryCap"] = "00:00:00.500" });
        var (hostile, device, v1) = (rig.Gateway, rig.Device, rig.V1);

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
        var attack = await rig.RunAgentAsync();
        output.WriteLine(attack.Output + attack.Error);
        Assert.NotEqual(0, attack.ExitCode);
        Assert.Contains("is below the minimum rate of 4096 B/s", attack.Output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the trickle held the agent for {clock.Elapsed}");
        Assert.False(Directory.Exists(device.Layout.Client) && Directory.EnumerateFiles(device.Layout.Client, "*", SearchOption.AllDirectories).Any(),
            "nothing may be installed from a trickling gateway");
        var state = await rig.Node.StateAsync("dev-trickle");
        Assert.Equal(0, state.InstalledVersionId);

        hostile.OnCheckIn = null;
        hostile.TrickleChunksBytesPerSecond = null;
        var honest = await rig.RunAgentAsync();
        output.WriteLine(honest.Output + honest.Error);
        Assert.Equal(0, honest.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));
    }
}
