using System.Text.Json.Nodes;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Offline detection and restarts with the idle fast path, real orch-agent processes against a real node with short
/// intervals: a device answered only by the fast path stays online with its actor asleep for many offline timeouts,
/// goes Offline one offline timeout after its last answered check-in (not before), and an order given before a node
/// restart reaches the device at its first check-in after it.
/// </summary>
public sealed class IdleFastPathOfflineTests(ITestOutputHelper output)
{
    private const string WithoutActor = "orch_gateway_checkins_answered_without_actor_total";
    private static readonly TimeSpan OfflineAfter = TimeSpan.FromSeconds(8);

    private static readonly Dictionary<string, string?> ShortIntervals = new()
    {
        ["Gateway:AnswerIdleWithoutActor"] = "true",
        ["Gateway:NextCheckInSeconds"] = "2",
        ["Devices:OfflineAfter"] = "00:00:08",
        ["Devices:LastSeenPersistInterval"] = "00:00:05",
        // The fast path answers for the whole test: the journaled last-seen never falls due.
        ["Gateway:IdleLastSeenPersistInterval"] = "00:10:00",
        ["Devices:IdlePassivateAfter"] = "00:00:00.500",
        ["Devices:UnheardPassivateAfter"] = "00:00:02",
    };

    private Task<OrchProcess.Result> Orch(NodeUnderTest node, params string[] args) => OrchProcess.OkAsync(node, output, args);

    private Task<AgentProcess.Result> Agent(TestDevice d) => FleetSteps.RunAgentAsync(d, output);

    [Fact]
    public async Task A_device_answered_only_by_the_fast_path_stays_online_with_its_actor_asleep_and_goes_offline_an_offline_timeout_after_its_last_answer()
    {
        const string device = "dev-sighted";
        await using var node = await NodeUnderTest.StartAsync(ShortIntervals);
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        await Orch(node, "channel", "set", "acme", "stable", "1.0");
        using var d = await FleetSteps.ProvisionAsync(node, store, device, output);
        Assert.Contains("upgrade done: version 1.0", (await Agent(d)).Output);
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the registry shows the device idle", async () => (await node.GetJsonAsync("admin/v1/devices?status=Idle")).ToJsonString(),
            json => json.Contains(device, StringComparison.Ordinal));

        // Check-ins every ~2 s (the agent's cadence here), each answered without the actor, for three offline timeouts.
        var fastBefore = await node.MetricAsync(WithoutActor);
        List<string>? journal = null;
        var runs = 0;
        var lastRunStart = DateTimeOffset.UtcNow;
        var until = DateTime.UtcNow + 3 * OfflineAfter + TimeSpan.FromSeconds(4);
        while (DateTime.UtcNow < until)
        {
            lastRunStart = DateTimeOffset.UtcNow;
            Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
            runs++;
            if (journal is null)
            {
                // From the first fast answer on, the actor may only passivate and stay asleep.
                await FleetSteps.UntilAsync("the first check-in is answered without the actor", () => node.MetricAsync(WithoutActor), n => n > fastBefore);
                await FleetSteps.UntilAsync("the idle actor passivates", () => node.IsLiveAsync(device), live => !live);
                journal = await node.JournalAsync(device);
            }
            else
            {
                Assert.False(await node.IsLiveAsync(device), $"check-in {runs} (or the silence watch) woke the actor of a device answered by the fast path");
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
        output.WriteLine($"{runs} check-ins over {3 * OfflineAfter + TimeSpan.FromSeconds(4)}");
        await FleetSteps.UntilAsync($"all {runs} check-ins are answered without the actor", () => node.MetricAsync(WithoutActor), n => n >= fastBefore + runs);
        Assert.Equal(journal, await node.JournalAsync(device));

        // The agent stops: the device goes Offline, an offline timeout after its last answered check-in and not before.
        var offline = await FleetSteps.UntilAsync("the silent device goes Offline", () => HistoryAsync(node, device),
            events => events.Any(e => e["type"]!.GetValue<string>() == nameof(DeviceWentOffline)));
        var wentOffline = offline.Last(e => e["type"]!.GetValue<string>() == nameof(DeviceWentOffline));
        var lastSeen = DateTimeOffset.Parse(wentOffline["data"]!["lastSeen"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var at = DateTimeOffset.Parse(wentOffline["data"]!["at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        output.WriteLine($"last check-in started {lastRunStart:O}, journaled last-seen {lastSeen:O}, offline at {at:O}");
        // The event's last-seen is the last fast-path answer (sent after that run started), not what the actor heard.
        Assert.True(lastSeen >= lastRunStart.AddMilliseconds(-50), $"DeviceWentOffline names last-seen {lastSeen:O}, before the last answered check-in ({lastRunStart:O})");
        Assert.True(at - lastSeen >= OfflineAfter, $"marked Offline {(at - lastSeen).TotalSeconds:F1} s after its last answered check-in, before the {OfflineAfter.TotalSeconds} s offline timeout");
        Assert.Equal(journal!.Count + 1, (await node.JournalAsync(device)).Count);

        // It checks in again once the node's registry shows it Offline (until then the row lags, as for any order):
        // back, journaled by its actor (an Offline row is never the fast path's).
        await FleetSteps.UntilAsync("the registry shows the device Offline", async () => (await node.GetJsonAsync("admin/v1/devices?status=Offline")).ToJsonString(),
            json => json.Contains(device, StringComparison.Ordinal));
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        Assert.Contains(nameof(DeviceCameBack), await node.JournalAsync(device));
        Assert.Equal(DeviceStatus.Idle, await StatusAsync(node, device));
    }

    [Fact]
    public async Task An_order_given_before_a_node_restart_reaches_the_device_at_its_first_check_in_after_it()
    {
        const string device = "dev-restart";
        // Live actors: the filler devices below would otherwise each save a snapshot as they passivate.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Devices:IdlePassivateAfter"] = "00:00:00", ["Gateway:AnswerIdleWithoutActor"] = "true" });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        // Orders by assignment (no channel, which every node's channel cache would show the fast path at once).
        using var d = await FleetSteps.ProvisionAsync(node, store, device, output);
        await node.AssignAsync(device, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        Assert.Contains("upgrade done: version 1.0", (await Agent(d)).Output);
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the registry shows the device idle", async () => (await node.GetJsonAsync("admin/v1/devices?status=Idle")).ToJsonString(),
            json => json.Contains(device, StringComparison.Ordinal));
        var fast = await node.MetricAsync(WithoutActor);
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the idle check-in is answered without the actor", () => node.MetricAsync(WithoutActor), n => n > fast);

        // A journal the restarted registry needs a while to fold, with the order as its last event: the device's row
        // (made from its first events) exists long before the order is folded into it.
        const int filler = 60_000;
        foreach (var batch in Enumerable.Range(0, filler).Select(i => new { deviceId = $"filler-{i:D5}", product = "acme" }).Chunk(10_000))
            await node.SendAsync(HttpMethod.Post, "admin/v1/devices/register-batch", new { devices = batch });
        await node.AssignAsync(device, "acme", v2.Version, v2.VersionId, v2.ManifestPath);

        await node.RestartAsync();
        var restarted = DateTime.UtcNow;
        var upgraded = await Agent(d);
        output.WriteLine($"first check-in after the restart took {(DateTime.UtcNow - restarted).TotalSeconds:F1} s; registry then at " +
                         (await node.GetJsonAsync("admin/v1/fleet")).ToJsonString());
        Assert.Contains("upgrade done: version 2.0", upgraded.Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));

        // Once the registry has caught up, idle check-ins are the fast path's again.
        Assert.Contains($"up to date at version ID {v2.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the registry shows the device idle on 2.0", async () => (await node.GetJsonAsync("admin/v1/devices?status=Idle")).ToJsonString(),
            json => json.Contains(device, StringComparison.Ordinal) && json.Contains($"\"installedVersionId\":{v2.VersionId}", StringComparison.Ordinal));
        var before = await node.MetricAsync(WithoutActor);
        Assert.Contains($"up to date at version ID {v2.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the restarted node answers an idle check-in without the actor", () => node.MetricAsync(WithoutActor), n => n > before);
    }

    private static async Task<List<JsonNode>> HistoryAsync(NodeUnderTest node, string device) =>
        (await node.GetJsonAsync($"admin/v1/devices/{device}/history?last=1000"))["events"]!.AsArray().Select(e => e!).ToList();

    private static async Task<DeviceStatus> StatusAsync(NodeUnderTest node, string device) =>
        Enum.Parse<DeviceStatus>((await node.GetJsonAsync($"admin/v1/devices/{device}"))["status"]!.GetValue<string>());
}
