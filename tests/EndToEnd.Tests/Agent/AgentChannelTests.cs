using System.Text.Json;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Release channels with real processes: the orch-agent binary and the orch command line against a real node. What is
/// asserted is what lands on the device's disk, in its actor's state, and in the channel, device and rollout views.
/// </summary>
public sealed class AgentChannelTests(ITestOutputHelper output)
{
    private Task<OrchProcess.Result> Orch(NodeUnderTest node, params string[] args) => OrchProcess.OkAsync(node, output, args);

    private Task<AgentProcess.Result> Agent(TestDevice d, int expectedExit = 0) => FleetSteps.RunAgentAsync(d, output, expectedExit);

    private Task<TestDevice> Provision(NodeUnderTest node, TestStore store, string id, DownloadSettings? download = null) =>
        FleetSteps.ProvisionAsync(node, store, id, output, download);

    private static Task<T> Until<T>(string what, Func<Task<T>> read, Func<T, bool> done) => FleetSteps.UntilAsync(what, read, done);

    private async Task<JsonElement> ChannelShow(NodeUnderTest node, string channel) =>
        (await Orch(node, "channel", "show", "acme", channel, "--json")).Json;

    private static long? CurrentId(JsonElement show) =>
        show.GetProperty("channel").GetProperty("current") is { ValueKind: JsonValueKind.Object } c ? c.GetProperty("versionId").GetInt64() : null;

    [Fact]
    public async Task A_device_provisioned_after_the_channel_was_set_converges_to_its_release_without_a_rollout()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());

        await Orch(node, "channel", "set", "acme", "stable", "1.0", "--reason", "first release");
        // A version the product's index does not list is refused (exit 3, HTTP 400) and the channel stays where it was.
        var refused = await OrchProcess.RunAsync(node, output, "channel", "set", "acme", "stable", "9.9");
        Assert.Equal(3, refused.ExitCode);
        Assert.Contains("'9.9'", refused.Error);
        var show = await ChannelShow(node, "stable");
        Assert.Equal(v1.VersionId, CurrentId(show));
        Assert.Single(show.GetProperty("channel").GetProperty("history").EnumerateArray());

        using var fresh = await Provision(node, store, "dev-new");
        var install = await Agent(fresh);
        Assert.Contains("upgrade done: version 1.0", install.Output);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(fresh));
        var state = await node.StateAsync("dev-new");
        Assert.Equal((DeviceStatus.Completed, v1.VersionId, (TargetAssignment?)null), (state.Status, state.InstalledVersionId, state.Target));
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(fresh)).Output);

        // Membership: a device moved to "beta" gets nothing while beta has no release, then beta's release.
        using var tester = await Provision(node, store, "dev-beta");
        await Orch(node, "device", "set-channel", "dev-beta", "beta");
        Assert.Contains("up to date at version ID 0", (await Agent(tester)).Output);
        Assert.False(Directory.Exists(tester.Layout.Client) && Directory.EnumerateFiles(tester.Layout.Client, "*", SearchOption.AllDirectories).Any());
        await Orch(node, "channel", "set", "acme", "beta", "2.0");
        await Agent(tester);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(tester));
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(fresh)); // stable did not move

        // The views agree: device show names the channel and what is installed; channel show counts the devices on it.
        var device = (await Orch(node, "device", "show", "dev-beta", "--json")).Json;
        Assert.Equal(("beta", v2.VersionId), (device.GetProperty("channel").GetString(), device.GetProperty("installedVersionId").GetInt64()));
        // The registry folds the journal behind the device actors: dev-beta counts on stable until its move is folded.
        var stable = await Until("registry shows dev-new on stable's release and dev-beta moved away", () => ChannelShow(node, "stable"),
            s => s.GetProperty("onCurrent").GetInt32() == 1 && s.GetProperty("devices").GetInt32() == 1);
        Assert.Equal(1, stable.GetProperty("devices").GetInt32());
        var beta = await Until("registry shows dev-beta on beta's release", () => ChannelShow(node, "beta"), s => s.GetProperty("onCurrent").GetInt32() == 1);
        Assert.Equal((1, v2.VersionId), (beta.GetProperty("devices").GetInt32(), CurrentId(beta)!.Value));
        var list = (await Orch(node, "channel", "list", "--json")).Json.GetProperty("channels").EnumerateArray()
            .Select(c => (c.GetProperty("channel").GetString(), c.GetProperty("current").GetProperty("version").GetString())).ToList();
        Assert.Equal([("beta", "2.0"), ("stable", "1.0")], list);
        // The dashboard's data route shows the channels and their current releases.
        using var req = new HttpRequestMessage(HttpMethod.Get, "admin/v1/dashboard");
        req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await node.Http.SendAsync(req);
        var dashboard = JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(list, dashboard.GetProperty("channels").EnumerateArray()
            .Select(c => (c.GetProperty("channel").GetString(), c.GetProperty("current").GetProperty("version").GetString())).ToList());
    }

    [Fact]
    public async Task A_completed_rollout_moves_the_channel_and_a_rollback_moves_it_back()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        await Orch(node, "channel", "set", "acme", "stable", "1.0");

        using var early = await Provision(node, store, "dev-a");
        using var waiting = await Provision(node, store, "dev-b");
        await Agent(early);
        await Agent(waiting);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(early));

        // Wave 1 is dev-a alone; dev-b, not reached yet, stays on the channel's release while the rollout runs.
        var created = (await Orch(node, "rollout", "create", "--id", "ro-ch", "--product", "acme", "--version", "2.0", "--devices", "dev-a,dev-b",
            "--waves", "1,100%", "--channel", "stable", "--json")).Json;
        Assert.Equal("stable", created.GetProperty("spec").GetProperty("channel").GetString());
        await Until("dev-a assigned by ro-ch", () => node.StateAsync("dev-a"), s => s.Target?.RolloutId == "ro-ch");
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(waiting)).Output);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(waiting));
        var held = await ChannelShow(node, "stable");
        Assert.Equal(v1.VersionId, CurrentId(held));
        Assert.Equal("ro-ch", held.GetProperty("channel").GetProperty("rollouts")[0].GetProperty("rolloutId").GetString());

        await Agent(early);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(early));
        await Until("dev-b assigned by ro-ch (wave 2)", () => node.StateAsync("dev-b"), s => s.Target?.RolloutId == "ro-ch");
        await Agent(waiting);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(waiting));

        // Completion: the channel's current release becomes the target, and a device provisioned afterwards installs it.
        var done = await Until("ro-ch completed", async () => (await Orch(node, "rollout", "show", "ro-ch", "--json")).Json,
            r => r.GetProperty("status").GetString() == "Completed");
        Assert.Equal(2, done.GetProperty("waves").EnumerateArray().Sum(w => w.GetProperty("succeeded").GetInt32()));
        var moved = await Until("channel stable at 2.0", () => ChannelShow(node, "stable"), c => CurrentId(c) == v2.VersionId);
        Assert.Empty(moved.GetProperty("channel").GetProperty("rollouts").EnumerateArray());
        Assert.Contains("rollout ro-ch completed", moved.GetProperty("channel").GetProperty("history").EnumerateArray().Last().GetProperty("cause").GetString());
        // Two session attempts: after the rollback this device is offered an older release, which its agent refuses.
        var releases = (await Orch(node, "release", "list", "--json")).Json.GetProperty("products")[0].GetProperty("versions");
        Assert.Equal(["stable"], releases[1].GetProperty("channels").EnumerateArray().Select(c => c.GetString()));
        Assert.Empty(releases[0].GetProperty("channels").EnumerateArray());
        using var late = await Provision(node, store, "dev-late", TestDevice.FastDownloads with { MaxSessionAttempts = 2 });
        await Agent(late);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(late));
        var lateState = await node.StateAsync("dev-late");
        Assert.Equal((v2.VersionId, (TargetAssignment?)null), (lateState.InstalledVersionId, lateState.Target));
        await Until("registry shows three devices on 2.0", () => ChannelShow(node, "stable"), c => c.GetProperty("onCurrent").GetInt32() == 3);

        // Rollback: the channel returns to 1.0 and a new device installs 1.0.
        await Orch(node, "rollout", "rollback", "ro-ch", "--reason", "bad build");
        var back = await Until("channel stable back at 1.0", () => ChannelShow(node, "stable"), c => CurrentId(c) == v1.VersionId);
        Assert.Contains("rollout ro-ch rolled back", back.GetProperty("channel").GetProperty("history").EnumerateArray().Last().GetProperty("cause").GetString());
        using var after = await Provision(node, store, "dev-after");
        await Agent(after);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(after));
        // dev-late took 2.0 from the channel, outside the rollout: no operator authorized its downgrade, so its floor
        // (2.0) holds and the node offers it nothing below it; it stays on 2.0, untouched.
        await Agent(late);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(late));
        var lateAfter = await node.StateAsync("dev-late");
        Assert.Equal((v2.VersionId, v2.VersionId, (WorkItem?)null), (lateAfter.InstalledVersionId, lateAfter.FloorVersionId, lateAfter.Work));
        var rolledBack = (await Orch(node, "rollout", "show", "ro-ch", "--json")).Json;
        Assert.Equal("RolledBack", rolledBack.GetProperty("status").GetString());
    }
}
