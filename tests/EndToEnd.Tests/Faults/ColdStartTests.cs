using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// A restarted node process answers its known devices at full speed from the moment it reports ready (issue 22, cold
/// check-ins): the stored request keys are loaded at start (<c>Credentials:PreloadAtStart</c>), so a known device's
/// first check-in reads no credential from the database, and the registry has folded the journal, so an idle device is
/// answered without recovering its actor. A credential revoked before the restart stays refused. Both hold for signed
/// HTTP check-ins and for the real agent process. Counted on the node's own /metrics (a fresh process starts every
/// counter at 0).
/// </summary>
public sealed class ColdStartTests(ITestOutputHelper output)
{
    private const string Reads = "orch_gateway_credential_db_reads_total";
    private const string CheckIns = "orch_gateway_checkins_total";
    private const string WithoutActor = "orch_gateway_checkins_answered_without_actor_total";

    [Fact]
    public async Task A_restarted_node_answers_a_known_device_without_a_credential_read_or_its_actor_and_still_refuses_a_revoked_one()
    {
        using var rig = new NodeProcessRig();
        var (store, http) = (rig.Store, rig.Http);
        var release = store.Publish("1.0", Releases.V1());
        var request = new CheckInRequest("acme", release.VersionId, release.InventoryDigest, null, "1.0.0");

        await rig.StartAsync();
        var secrets = new Dictionary<string, string>();
        var agents = new Dictionary<string, TestDevice>();
        try
        {
            foreach (var id in new[] { "cold-1", "cold-2", "cold-revoked" })
            {
                secrets[id] = await NodeProcessHttp.ProvisionAsync(http, id);
                // The first check-in records the installed release (the actor journals it); the second is idle.
                for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, await CheckInAsync(http, id, secrets[id], request));
            }
            // Two real agents install the product's stable release (what the devices above report installed); a second
            // run finds nothing to do and settles the device (Completed -> Idle), as a device in the field is by the restart.
            using (var channel = new HttpRequestMessage(HttpMethod.Post, "admin/v1/channels/acme/stable")
                   { Content = JsonContent.Create(new { version = "1.0" }) })
            {
                channel.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
                using var res = await http.SendAsync(channel);
                Assert.True(res.IsSuccessStatusCode, $"channel set: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
            }
            foreach (var id in new[] { "cold-agent", "cold-agent-revoked" })
            {
                agents[id] = new TestDevice(http.BaseAddress!.ToString(), credential: await NodeProcessHttp.ProvisionAsync(http, id), deviceId: id,
                    contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
                for (var run = 1; run <= 2; run++)
                {
                    var r = await RunAgentAsync(agents[id]);
                    Assert.True(r.ExitCode == 0, $"agent {id}, run {run} before the restart: exit {r.ExitCode}\n{r.Output}{r.Error}");
                }
                Assert.Equal(release.InventoryDigest, Releases.ClientDigest(agents[id]));
            }
            foreach (var id in new[] { "cold-revoked", "cold-agent-revoked" })
            {
                using var revoke = new HttpRequestMessage(HttpMethod.Delete, $"admin/v1/devices/{id}/credential");
                revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
                using var res = await http.SendAsync(revoke);
                Assert.Equal(HttpStatusCode.NoContent, res.StatusCode);
            }
        }
        finally { rig.Kill(); }

        await rig.StartAsync();
        try
        {
            Assert.Equal(HttpStatusCode.OK, await CheckInAsync(http, "cold-1", secrets["cold-1"], request));
            var metrics = await UntilCheckInsAsync(http, 1);
            output.WriteLine($"after the restart, one check-in: {Reads} {Sum(metrics, Reads)}, {WithoutActor} {Sum(metrics, WithoutActor)}");
            Assert.Equal(0, Sum(metrics, Reads));
            Assert.Equal(1, Sum(metrics, WithoutActor));

            // The real agent's check-in: answered (exit 0), by the gateway without the actor, without a credential read.
            var agent = await RunAgentAsync(agents["cold-agent"]);
            Assert.True(agent.ExitCode == 0, $"agent after the restart: exit {agent.ExitCode}\n{agent.Output}{agent.Error}");
            metrics = await UntilCheckInsAsync(http, 2);
            output.WriteLine($"after the agent's check-in: {CheckIns} {Sum(metrics, CheckIns)}, {Reads} {Sum(metrics, Reads)}, {WithoutActor} {Sum(metrics, WithoutActor)}");
            Assert.Equal(2, Sum(metrics, CheckIns));
            Assert.Equal(0, Sum(metrics, Reads));
            Assert.Equal(2, Sum(metrics, WithoutActor));

            Assert.Equal(HttpStatusCode.Unauthorized, await CheckInAsync(http, "cold-revoked", secrets["cold-revoked"], request));
            // The revoked device's real agent is refused: it exits with an error naming the refused credential.
            var revoked = await RunAgentAsync(agents["cold-agent-revoked"]);
            output.WriteLine($"revoked agent after the restart: exit {revoked.ExitCode}\n{revoked.Output}{revoked.Error}");
            Assert.NotEqual(0, revoked.ExitCode);
            Assert.Contains("credential_invalid", revoked.Output + revoked.Error);
            metrics = await http.GetStringAsync("metrics");
            Assert.Equal(2, Sum(metrics, CheckIns));
            // The runtime's own meter is exported beside the node's: what the process holds, and the thread pool's queue.
            Assert.True(Sum(metrics, "dotnet_process_memory_working_set_bytes") > 0, "dotnet_process_memory_working_set_bytes on /metrics");
            Assert.Contains("dotnet_thread_pool_queue_length", metrics);
            Assert.Contains("dotnet_gc_heap_total_allocated_bytes", metrics);
        }
        finally { rig.Kill(); }

        // Without the preload the same first check-in reads the device's key: what the counter above would have shown.
        await rig.StartAsync("--Credentials:PreloadAtStart=false");
        try
        {
            Assert.Equal(HttpStatusCode.OK, await CheckInAsync(http, "cold-2", secrets["cold-2"], request));
            var metrics = await UntilCheckInsAsync(http, 1);
            Assert.Equal(1, Sum(metrics, Reads));
            Assert.Equal(HttpStatusCode.Unauthorized, await CheckInAsync(http, "cold-revoked", secrets["cold-revoked"], request));
        }
        finally
        {
            rig.Kill();
            foreach (var a in agents.Values) a.Dispose();
        }
    }

    // One agent run: a check-in, and what it answers (an install, "nothing to do", or a refusal) ends it.
    private static Task<AgentProcess.Result> RunAgentAsync(TestDevice device) =>
        AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(60));

    private static double Sum(string metrics, string name) => PrometheusText.Sum(metrics, name);

    // /metrics answers from a scrape cached for a moment, so it is polled until it shows the check-ins made.
    private static async Task<string> UntilCheckInsAsync(HttpClient http, double checkIns) =>
        await FleetSteps.UntilAsync($"{CheckIns} reaches {checkIns}", () => http.GetStringAsync("metrics"), m => Sum(m, CheckIns) >= checkIns);

    private static async Task<HttpStatusCode> CheckInAsync(HttpClient http, string deviceId, string secret, CheckInRequest body)
    {
        using var res = await NodeProcessHttp.CheckInAsync(http, deviceId, secret, body);
        return res.StatusCode;
    }
}
