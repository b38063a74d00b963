using System.Net;
using System.Net.Http.Headers;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Devices;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The gateway's idle fast path with a real orch-agent against a real node: an idle device's check-ins are answered
/// without its actor (which stays passivated) and journal nothing, and everything that is not idle — a channel move,
/// a damaged file, a revoked credential — still gets the actor's (or the gateway's) full answer.
/// </summary>
public sealed class IdleFastPathTests(ITestOutputHelper output)
{
    private const string WithoutActor = "orch_gateway_checkins_answered_without_actor_total";
    private const string Device = "dev-fast";

    private Task<OrchProcess.Result> Orch(NodeUnderTest node, params string[] args) => OrchProcess.OkAsync(node, output, args);

    private Task<AgentProcess.Result> Agent(TestDevice d, int expectedExit = 0) => FleetSteps.RunAgentAsync(d, output, expectedExit);

    [Fact]
    public async Task An_idle_device_is_answered_without_its_actor_and_still_upgrades_repairs_and_is_refused_when_revoked()
    {
        // Idle actors passivate at once, so "the actor stayed passivated" shows which check-ins never reached it.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Devices:IdlePassivateAfter"] = "00:00:00.500", ["Gateway:AnswerIdleWithoutActor"] = "true" });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        await Orch(node, "channel", "set", "acme", "stable", "1.0");
        using var d = await FleetSteps.ProvisionAsync(node, store, Device, output);

        Assert.Contains("upgrade done: version 1.0", (await Agent(d)).Output);
        // The check-in after the install settles the device (Completed -> Idle, journaled by the actor).
        Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the registry shows the device idle on 1.0", async () => (await node.GetJsonAsync($"admin/v1/devices?status=Idle"))
            .ToJsonString(), json => json.Contains(Device, StringComparison.Ordinal));
        await UntilPassivated(node);
        var journal = await node.JournalAsync(Device);
        var fastBefore = await node.MetricAsync(WithoutActor);

        for (var i = 0; i < 3; i++)
            Assert.Contains($"up to date at version ID {v1.VersionId}", (await Agent(d)).Output);
        Assert.False(await node.IsLiveAsync(Device), "an idle check-in started the device's actor");
        // /metrics answers from a scrape cached for a moment (the exporter's), so the count is polled, not read once.
        await FleetSteps.UntilAsync("the node counts three check-ins answered without the actor", async () => await node.MetricAsync(WithoutActor),
            count => count >= fastBefore + 3);
        Assert.Equal(journal, await node.JournalAsync(Device));
        // The check-ins' own gauge stands in for ASP.NET Core's active-requests gauge, which is not exported (two tagged
        // updates per request); the request-duration histogram still covers the check-in route.
        // Polled like the count above: a scrape may be a moment old.
        var metrics = await FleetSteps.UntilAsync("the check-ins are in http_server_request_duration_seconds", () => node.Http.GetStringAsync("metrics"),
            m => PrometheusText.Sum(m, "http_server_request_duration_seconds_count", "check-in") >= 3);
        Assert.Contains("\norch_gateway_checkins_in_flight{", metrics, StringComparison.Ordinal);
        Assert.Equal(0, PrometheusText.Sum(metrics, "orch_gateway_checkins_in_flight"));
        Assert.DoesNotContain("http_server_active_requests", metrics, StringComparison.Ordinal);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        // The channel moves: the same agent is ordered 2.0 (by the actor) and installs it.
        await Orch(node, "channel", "set", "acme", "stable", "2.0");
        Assert.Contains("upgrade done: version 2.0", (await Agent(d)).Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        var upgraded = await node.StateAsync(Device);
        Assert.Equal((DeviceStatus.Completed, v2.VersionId), (upgraded.Status, upgraded.InstalledVersionId));
        var afterUpgrade = await node.JournalAsync(Device);
        Assert.True(afterUpgrade.Count > journal.Count && afterUpgrade[^1] == nameof(WorkCompleted), string.Join(", ", afterUpgrade));

        // Settle on 2.0 and wait until the fast path answers again, then damage a file: the check-in goes to the actor.
        Assert.Contains($"up to date at version ID {v2.VersionId}", (await Agent(d)).Output);
        await FleetSteps.UntilAsync("the registry shows the device idle on 2.0", async () => (await node.GetJsonAsync($"admin/v1/devices?status=Idle"))
            .ToJsonString(), json => json.Contains(Device, StringComparison.Ordinal) && json.Contains($"\"installedVersionId\":{v2.VersionId}", StringComparison.Ordinal));
        await UntilPassivated(node);
        var app = Path.Combine(d.Layout.Client, "bin", "app");
        var bytes = File.ReadAllBytes(app);
        bytes[123] ^= 0x55;
        File.WriteAllBytes(app, bytes);
        Assert.Contains("repair done", (await Agent(d)).Output);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Contains(nameof(WorkCompleted), (await node.JournalAsync(Device))[afterUpgrade.Count..]);

        // Revoked: refused at authentication, before any fast path, and nothing is journaled.
        Assert.Contains($"up to date at version ID {v2.VersionId}", (await Agent(d)).Output);
        using (var revoke = new HttpRequestMessage(HttpMethod.Delete, $"admin/v1/devices/{Device}/credential"))
        {
            revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
            using var res = await node.Http.SendAsync(revoke);
            Assert.Equal(HttpStatusCode.NoContent, res.StatusCode);
        }
        var beforeRevoked = await node.JournalAsync(Device);
        var refused = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine($"[revoked agent exit {refused.ExitCode}]\n{refused.Output}{refused.Error}");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("HTTP 401 credential_invalid", refused.Output + refused.Error);
        Assert.Equal(beforeRevoked, await node.JournalAsync(Device));
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
    }

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
