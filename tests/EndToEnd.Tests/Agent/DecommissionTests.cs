using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary><c>orch device decommission</c> (a real orch process) retires a device a real agent runs on.</summary>
public sealed class DecommissionTests(ITestOutputHelper output)
{
    /// <summary>Polls <c>orch device list</c> until old-1 is (or is no longer) in it; the registry lags the journal.</summary>
    private async Task ListedAsync(NodeUnderTest node, bool expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var listed = (await OrchProcess.OkAsync(node, output, "device", "list")).Output.Contains("old-1", StringComparison.Ordinal);
            if (listed == expected) return;
            Assert.True(DateTime.UtcNow < deadline, expected ? "old-1 never appeared in device list" : "old-1 is still in device list after its decommission");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task A_decommissioned_device_is_locked_out_leaves_the_fleet_views_and_keeps_its_history()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync("old-1"), deviceId: "old-1",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await node.AssignAsync("old-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var first = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        // Without a reason nothing happens.
        var noReason = await OrchProcess.RunAsync(node, output, "device", "decommission", "old-1");
        Assert.Equal(2, noReason.ExitCode);
        await ListedAsync(node, expected: true); // the registry follows the journal: wait until it has the device

        await OrchProcess.OkAsync(node, output, "device", "decommission", "old-1", "--reason", "returned to the vendor");

        // Nothing can give it work any more, and the agent is refused (its credential is gone): its tree is left alone.
        Assert.NotNull(await Record.ExceptionAsync(() => node.AssignAsync("old-1", "acme", v2.Version, v2.VersionId, v2.ManifestPath)));
        var refused = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(refused.Output + refused.Error);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        // Out of the fleet views, history kept, and the reason in it.
        await ListedAsync(node, expected: false);
        var show = await OrchProcess.OkAsync(node, output, "device", "show", "old-1");
        Assert.Contains("decommissioned", show.Output);
        var history = await OrchProcess.OkAsync(node, output, "device", "history", "old-1");
        Assert.Contains("decommissioned by agent-e2e: returned to the vendor", history.Output);
        Assert.Contains("upgrade done: now running version ID 1", history.Output);
        Assert.Null((await node.StateAsync("old-1")).Target);
        var rollout = await OrchProcess.RunAsync(node, output, "rollout", "create", "--product", "acme", "--version", "2.0", "--devices", "old-1");
        Assert.Equal(3, rollout.ExitCode);
        Assert.Contains("decommissioned: old-1", rollout.Error);
    }
}
