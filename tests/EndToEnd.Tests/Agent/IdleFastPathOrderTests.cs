using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The idle fast path (on by default) never answers a device from a registry row older than an order its actor
/// acknowledged: a real orch-agent checking in again and again is answered without its actor, then an operator gives an
/// order (a move to another channel, a channel's release move, a rollout's assignment), and the agent's very next
/// check-in after the acknowledgement gets the work. The registry here polls the journal only every 5 s, so a row that
/// answered from before the order would answer "nothing to do" and the device would stay where it was.
/// </summary>
public sealed class IdleFastPathOrderTests(ITestOutputHelper output)
{
    private const string WithoutActor = "orch_gateway_checkins_answered_without_actor_total";
    private const string Device = "dev-order";

    private Task<OrchProcess.Result> Orch(NodeUnderTest node, params string[] args) => OrchProcess.OkAsync(node, output, args);

    private Task<AgentProcess.Result> Agent(TestDevice d) => FleetSteps.RunAgentAsync(d, output);

    [Fact]
    public async Task The_check_in_right_after_an_acknowledged_order_gets_the_work_although_the_fast_path_answered_the_one_before()
    {
        // Idle actors passivate 2 s after their last message: a check-in that leaves the actor asleep and the journal as
        // it was was answered by the fast path.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:IdlePassivateAfter"] = "00:00:02",
            ["Devices:QueryRefreshInterval"] = "00:00:05",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var v3 = store.Publish("3.0", Releases.Stamped(3));
        var v4 = store.Publish("4.0", Releases.Stamped(4));
        await Orch(node, "channel", "set", "acme", "stable", "1.0");
        await Orch(node, "channel", "set", "acme", "beta", "2.0");
        using var d = await FleetSteps.ProvisionAsync(node, store, Device, output);
        Assert.Contains("upgrade done: version 1.0", (await Agent(d)).Output);
        var fastBefore = await node.MetricAsync(WithoutActor);

        // 1. The device is moved to channel beta (its actor journals the new membership and acknowledges).
        await UntilAnsweredWithoutActor(node, d, v1.VersionId);
        await Orch(node, "device", "set-channel", Device, "beta");
        var journal = await node.JournalAsync(Device);
        Assert.Contains("upgrade done: version 2.0", (await Agent(d)).Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        await AssertInstalledAndJournaled(node, v2.VersionId, journal);

        // 2. The channel's release moves (the node's channel cache, which every check-in reads).
        await UntilAnsweredWithoutActor(node, d, v2.VersionId);
        await Orch(node, "channel", "set", "acme", "beta", "3.0");
        journal = await node.JournalAsync(Device);
        Assert.Contains("upgrade done: version 3.0", (await Agent(d)).Output);
        Assert.Equal(v3.InventoryDigest, Releases.ClientDigest(d));
        await AssertInstalledAndJournaled(node, v3.VersionId, journal);

        // 3. A rollout holding channel beta assigns 4.0: once the assignment is journaled, the next check-in installs it.
        await UntilAnsweredWithoutActor(node, d, v3.VersionId);
        await node.CreateRolloutAsync("ro-fast", "4.0", [Device], new Dictionary<string, object> { ["channel"] = "beta" });
        await FleetSteps.UntilAsync("the rollout's assignment is journaled and channel beta is held by it", async () =>
            (await node.JournalAsync(Device), await ChannelRollouts(node)),
            x => x.Item1.Contains(nameof(TargetAssigned)) && x.Item2.Contains("ro-fast"));
        journal = await node.JournalAsync(Device);
        Assert.Contains("upgrade done: version 4.0", (await Agent(d)).Output);
        Assert.Equal(v4.InventoryDigest, Releases.ClientDigest(d));
        await AssertInstalledAndJournaled(node, v4.VersionId, journal);

        // The quiet check-ins between the orders were the fast path's.
        await FleetSteps.UntilAsync("the node counts check-ins answered without the actor", async () => await node.MetricAsync(WithoutActor),
            count => count >= fastBefore + 3);
    }

    // Runs the agent until one of its check-ins is answered "nothing to do" by the fast path: the actor stays asleep
    // and nothing is journaled. The registry folds the device's last events first (up to its 5 s poll).
    private async Task UntilAnsweredWithoutActor(NodeUnderTest node, TestDevice d, long versionId)
    {
        var deadline = DateTime.UtcNow + FleetSteps.Patience;
        while (true)
        {
            await UntilPassivated(node);
            var journal = await node.JournalAsync(Device);
            Assert.Contains($"up to date at version ID {versionId}", (await Agent(d)).Output);
            if (!await node.IsLiveAsync(Device) && (await node.JournalAsync(Device)).SequenceEqual(journal)) return;
            Assert.True(DateTime.UtcNow < deadline, $"no check-in of {Device} on {versionId} was answered without its actor within {FleetSteps.Patience}");
            await Task.Delay(500);
        }
    }

    private static async Task AssertInstalledAndJournaled(NodeUnderTest node, long versionId, List<string> before)
    {
        var state = await node.StateAsync(Device);
        Assert.Equal((DeviceStatus.Completed, versionId), (state.Status, state.InstalledVersionId));
        var after = await node.JournalAsync(Device);
        Assert.True(after.Count > before.Count && after[^1] == nameof(WorkCompleted), string.Join(", ", after));
    }

    private async Task<string> ChannelRollouts(NodeUnderTest node) =>
        (await Orch(node, "channel", "show", "acme", "beta", "--json")).Json.GetProperty("channel").GetProperty("rollouts").GetRawText();

    private static async Task UntilPassivated(NodeUnderTest node)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await node.IsLiveAsync(Device))
        {
            Assert.True(DateTime.UtcNow < deadline, "the idle device's actor was not passivated within 60 s");
            await Task.Delay(100);
        }
    }
}
