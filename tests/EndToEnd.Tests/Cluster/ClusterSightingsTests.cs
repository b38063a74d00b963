using System.Text.Json.Nodes;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Cluster.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster;

/// <summary>
/// The idle fast path in a cluster: every check-in of a few real agents lands on node 2's gateway, while their actors
/// are spread over both nodes. Node 2 answers them without the actors and carries the sightings to node 1, whose
/// silence watch puts off the offline checks of the devices it hosts without waking their actors: no device goes
/// Offline over several offline timeouts, and once the agents stop, every device does.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSightingsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan OfflineAfter = TimeSpan.FromSeconds(15);
    private const string WithoutActor = "orch_gateway_checkins_answered_without_actor_total";

    [PostgresClusterFact]
    public async Task Devices_answered_by_one_nodes_fast_path_stay_online_on_the_node_hosting_their_actors_and_go_offline_when_silent()
    {
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output, nodes: 2,
            environment: new Dictionary<string, string>
            {
                ["ORCH_Gateway__AnswerIdleWithoutActor"] = "true",
                ["ORCH_Gateway__NextCheckInSeconds"] = "2",
                ["ORCH_Devices__OfflineAfter"] = "00:00:15",
                ["ORCH_Devices__LastSeenPersistInterval"] = "00:00:10",
                ["ORCH_Gateway__IdleLastSeenPersistInterval"] = "00:10:00",
                ["ORCH_Devices__IdlePassivateAfter"] = "00:00:00.500",
                ["ORCH_Devices__UnheardPassivateAfter"] = "00:00:05",
            });
        await cluster.WaitUntilAllUpAsync("2 Up members", TimeSpan.FromSeconds(90));
        using var store = new TestStore(cluster.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var channel = await cluster.PostJsonAsync(1, "admin/v1/channels/acme/stable", new { version = "1.0" });
        Assert.True(channel.Status is System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.Created, $"channel set: {channel.Body}");
        // Node 2 may have joined after node 1 published the change (pub-sub is best effort; the periodic refresh bounds
        // it): its admin read asks the directory and takes the view, so the agents below meet a node that knows 1.0.
        await LocalCluster.WaitUntilAsync("node 2 sees acme/stable at 1.0", TimeSpan.FromSeconds(30), async () =>
        {
            var seen = (await cluster.GetAsync<JsonNode>(2, "admin/v1/channels/acme/stable")).ToJsonString();
            return (seen.Contains("\"1.0\"", StringComparison.Ordinal), seen);
        });

        // Devices in distinct shards; the coordinator gives new shards to the region with the fewest, so both nodes host some.
        var devices = new List<TestDevice>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var id = $"sighted-{i}";
                var secret = await cluster.ProvisionAsync(id);
                devices.Add(new TestDevice(cluster.HttpUrl(2).ToString(), credential: secret, deviceId: id, contentKey: store.ContentKey.ToBytes(),
                    trustRoot: store.SigningKey.PublicKey.ToBytes()));
            }
            // Installed first, settled after, so that no device is silent for long before the check-ins below start.
            foreach (var d in devices) Assert.Contains("upgrade done: version 1.0", (await FleetSteps.RunAgentAsync(d, output)).Output);
            foreach (var d in devices) Assert.Contains($"up to date at version ID {v1.VersionId}", (await FleetSteps.RunAgentAsync(d, output)).Output);
            await LocalCluster.WaitUntilAsync("node 2's registry shows every device idle", TimeSpan.FromSeconds(60), async () =>
            {
                var list = (await cluster.GetAsync<JsonNode>(2, "admin/v1/devices?status=Idle")).ToJsonString();
                return (devices.All(d => list.Contains(d.Config.DeviceId, StringComparison.Ordinal)), list);
            });

            // Every device checks in through node 2 only, for well over two offline timeouts.
            var fastBefore = await cluster.MetricAsync(2, WithoutActor);
            var journaled = new Dictionary<string, int>();
            foreach (var d in devices) journaled[d.Config.DeviceId!] = (await HistoryTypesAsync(cluster, d.Config.DeviceId!)).Count;
            var rounds = 0;
            var until = DateTime.UtcNow + 2.5 * OfflineAfter;
            while (DateTime.UtcNow < until)
            {
                foreach (var d in devices)
                    Assert.Contains($"up to date at version ID {v1.VersionId}", (await FleetSteps.RunAgentAsync(d, output)).Output);
                rounds++;
            }
            var fast = await cluster.MetricAsync(2, WithoutActor) - fastBefore;
            var received = await cluster.MetricAsync(1, "orch_gateway_sightings_received_total");
            var deferredOnNode1 = await cluster.MetricAsync(1, "orch_device_offline_checks_deferred_total");
            output.WriteLine($"{rounds} rounds; node 2 answered {fast} without actors; node 1 received {received} sightings and deferred {deferredOnNode1} offline checks");
            Assert.Equal(0, await cluster.MetricAsync(1, "orch_gateway_checkins_total"));
            Assert.True(fast >= rounds * devices.Count - devices.Count, $"node 2 answered only {fast} of {rounds * devices.Count} check-ins without actors");
            Assert.True(received > 0, "node 1 received no sightings from node 2");
            // A device whose actor lives on node 1 was due there and kept online by node 2's carried sightings.
            Assert.True(deferredOnNode1 > 0, "node 1's silence watch deferred no offline check (no device hosted there, or no sighting carried)");
            // Nothing journaled while they checked in: no Offline, no return, no heartbeat.
            foreach (var d in devices)
            {
                var types = await HistoryTypesAsync(cluster, d.Config.DeviceId!);
                Assert.True(types.Count == journaled[d.Config.DeviceId!], $"{d.Config.DeviceId} journaled {string.Join(", ", types.Skip(journaled[d.Config.DeviceId!]))} while checking in");
            }

            // Silent: each goes Offline.
            foreach (var d in devices)
                await LocalCluster.WaitUntilAsync($"{d.Config.DeviceId} goes Offline", TimeSpan.FromSeconds(90), async () =>
                {
                    var types = await HistoryTypesAsync(cluster, d.Config.DeviceId!);
                    return (types.Contains("DeviceWentOffline"), string.Join(",", types));
                });
        }
        finally
        {
            foreach (var d in devices) d.Dispose();
        }
    }

    private static async Task<List<string>> HistoryTypesAsync(LocalCluster cluster, string device) =>
        (await cluster.GetAsync<JsonNode>(1, $"admin/v1/devices/{device}/history?last=1000"))["events"]!.AsArray().Select(e => e!["type"]!.GetValue<string>()).ToList();
}
