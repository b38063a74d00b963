using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>The real orch-agent process against a real node (gateway, sharded persistent device actors, store).</summary>
public sealed class AgentNodeTests(ITestOutputHelper output)
{
    private async Task<AgentProcess.Result> Run(TestDevice d)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task Install_upgrade_and_repair_through_the_node()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var secret = await node.ProvisionAsync("dev-1");
        using var d = new TestDevice(node.BaseUrl, credential: secret,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());

        await Run(d); // first contact: nothing assigned yet
        Assert.Empty(Directory.Exists(d.Layout.Client) ? Directory.GetFiles(d.Layout.Client) : []);

        await node.AssignAsync("dev-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        var state = await node.StateAsync("dev-1");
        Assert.Equal(DeviceStatus.Completed, state.Status);
        Assert.Equal(v1.VersionId, state.InstalledVersionId);

        await node.AssignAsync("dev-1", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var upgrade = await Run(d);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Matches(@"reused from local files", upgrade.Output);
        Assert.Equal(v2.VersionId, (await node.StateAsync("dev-1")).InstalledVersionId);

        // Local damage: the node compares the reported inventory and orders a repair of exactly that file.
        var app = Path.Combine(d.Layout.Client, "bin", "app");
        var bytes = File.ReadAllBytes(app);
        bytes[123] ^= 0x55;
        File.WriteAllBytes(app, bytes);
        var repair = await Run(d);
        Assert.Contains("repair done", repair.Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));

        var quiet = await Run(d);
        Assert.Contains($"up to date at version ID {v2.VersionId}", quiet.Output);
    }

    [Fact]
    public async Task A_device_whose_actor_passivated_between_check_ins_installs_upgrades_and_repairs_correctly()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Devices:IdlePassivateAfter"] = "00:00:00.500" });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var secret = await node.ProvisionAsync("dev-idle");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-idle",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        async Task UntilPassivated()
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await node.IsLiveAsync("dev-idle"))
            {
                Assert.True(DateTime.UtcNow < deadline, "the idle device's actor was not passivated within 30 s");
                await Task.Delay(100);
            }
        }

        await Run(d);
        await UntilPassivated();
        await node.AssignAsync("dev-idle", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        await UntilPassivated();

        // Recovered from its snapshot for this check-in: nothing to do.
        var quiet = await Run(d);
        Assert.Contains($"up to date at version ID {v1.VersionId}", quiet.Output);
        await UntilPassivated();

        await node.AssignAsync("dev-idle", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        await Run(d);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        await UntilPassivated();
        var state = await node.StateAsync("dev-idle");
        Assert.Equal((DeviceStatus.Completed, v2.VersionId), (state.Status, state.InstalledVersionId));
        await UntilPassivated();

        // Local damage found by a recovered actor: a repair of exactly that file.
        var app = Path.Combine(d.Layout.Client, "bin", "app");
        var bytes = File.ReadAllBytes(app);
        bytes[123] ^= 0x55;
        File.WriteAllBytes(app, bytes);
        var repair = await Run(d);
        Assert.Contains("repair done", repair.Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task A_throttled_gateway_slows_the_agent_down_but_the_install_completes()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Throttle:DeviceBytesPerSecond"] = "300000",
            ["Throttle:DeviceBurstBytes"] = "300000",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var secret = await node.ProvisionAsync("dev-2");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-2",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 0 });
        await Run(d);
        await node.AssignAsync("dev-2", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var started = DateTime.UtcNow;
        await Run(d);
        var took = DateTime.UtcNow - started;
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        // ~1.1 MB stored at 300 kB/s after a 300 kB burst: at least ~2.5 s whether the agent paced itself or was answered 429.
        Assert.True(took > TimeSpan.FromSeconds(2), $"throttled install took only {took}");
    }
}
