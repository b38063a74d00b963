using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>A check-in answered 429 is the server pacing the device: it is waited out, never counted as a failed attempt.</summary>
public sealed class CheckInPacingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_agent_allowed_one_failed_attempt_waits_out_429_check_ins_and_installs()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        await using var gateway = await HostileGateway.StartAsync(node.BaseUrl);
        var secret = await node.ProvisionAsync("dev-paced");
        using var device = new TestDevice(gateway.BaseUrl, credential: secret, deviceId: "dev-paced",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await node.AssignAsync("dev-paced", "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        var refused = 0;
        gateway.OnCheckIn = async c => Interlocked.Increment(ref refused) <= 3
            ? (429, """{"error":"throttled","message":"check-in rate exceeded; retry later"}""")
            : await gateway.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
        var r = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(3, r.Output.Split('\n').Count(l => l.Contains("paced by the server")));
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));
        var state = await node.StateAsync("dev-paced");
        Assert.Equal(v1.VersionId, state.InstalledVersionId);
        Assert.Equal(0, state.FailedAttempts);
    }
}
