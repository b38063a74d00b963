using System.Diagnostics;
using System.Text.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Cluster.Support;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster;

/// <summary>
/// Three real node processes (deploy/local/cluster.sh) on one fresh PostgreSQL database: devices spread over the
/// shards of all nodes, a rollout runs, one node is SIGKILLed mid-rollout, the split-brain resolver downs it, its
/// shards move to the survivors, the rollout completes, and every device event the cluster acknowledged is
/// still in the journal. `orch cluster show` reports the surviving membership; the restarted node rejoins.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterFailoverTests(ITestOutputHelper output)
{
    private const int DeviceCount = 30;
    private const int ProbeCount = 30;
    /// <summary>Longest a killed node's devices may go unanswered (issue #22); see docs/scaling.md for the settings behind it.</summary>
    private static readonly TimeSpan FailoverBudget = TimeSpan.FromSeconds(10);
    private const string Product = "acme";
    private static readonly TimeSpan Phase = TimeSpan.FromSeconds(90);

    [PostgresClusterFact]
    public async Task Killing_a_node_mid_rollout_moves_its_shards_and_loses_no_acknowledged_event()
    {
        var total = Stopwatch.StartNew();
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output);
        output.WriteLine($"cluster up after {total.Elapsed.TotalSeconds:0.0} s");

        // All three members Up as the first node sees them.
        await cluster.WaitUntilAllUpAsync("3 Up members", Phase);

        // A release in the shared store, and devices that have checked in once (creating their actors).
        using var store = new TestStore(cluster.StoreRoot);
        var v1 = store.Publish("1.0", new Dictionary<string, byte[]> { ["bin/app"] = "v1"u8.ToArray(), ["etc/app.cfg"] = "x=1"u8.ToArray() }, Product);
        var digests = new Dictionary<long, string> { [v1.VersionId] = v1.InventoryDigest };
        using var fleet = new SimulatedFleet(cluster, Product);
        await fleet.ProvisionAsync(DeviceCount, node: 1);
        await Task.WhenAll(fleet.Devices.Select(async d =>
        {
            for (var attempt = 0; d.AckedCheckIns.IsEmpty; attempt++)
            {
                Assert.True(attempt < 20, $"{d.Id}: first check-in never acknowledged");
                await fleet.SessionAsync(d, attempt, digests);
            }
        }));

        // Probe devices, outside the rollout, that only check in: after the kill, those on the victim measure how long
        // a killed node's devices go unanswered (no rollout session shares them, so nothing else moves their state).
        using var probes = new SimulatedFleet(cluster, Product);
        await probes.ProvisionAsync(ProbeCount, node: 1, prefix: "probe");
        await Task.WhenAll(probes.Devices.Select(async d =>
        {
            for (var attempt = 0; d.AckedCheckIns.IsEmpty; attempt++)
            {
                Assert.True(attempt < 20, $"{d.Id}: first check-in never acknowledged");
                await probes.SessionAsync(d, attempt, digests);
            }
        }));

        // Devices are spread over the shards of every node.
        // (A region that registered late gets shards by the coordinator's rebalancing, so poll rather than assert once.)
        Dictionary<string, (string Shard, string Host, bool Alive)> before = [];
        Dictionary<string, int> byNode = [];
        await LocalCluster.WaitUntilAsync("devices hosted on all 3 nodes", Phase, async () =>
        {
            before = await LocateAllAsync(cluster, fleet, node: 1);
            byNode = before.GroupBy(kv => kv.Value.Host).ToDictionary(g => g.Key, g => g.Count());
            return (byNode.Count == 3, string.Join(", ", byNode.Select(kv => $"{kv.Key}={kv.Value}")));
        });
        output.WriteLine("devices per node before: " + string.Join(", ", byNode.Select(kv => $"{kv.Key}={kv.Value}")));
        // The victim: the non-first node hosting the most devices (node 1 stays as the admin API we ask).
        var victim = new[] { 2, 3 }.MaxBy(n => byNode.GetValueOrDefault(cluster.AkkaAddress(n)));
        var victimAddress = cluster.AkkaAddress(victim);
        var moved = before.Where(kv => kv.Value.Host == victimAddress).Select(kv => kv.Key).ToList();
        var probesBefore = await LocateAllAsync(cluster, probes, node: 1);
        var probed = probes.Devices.Where(d => probesBefore[d.Id].Host == victimAddress).ToList();
        Assert.True(probed.Count > 0, $"none of the {ProbeCount} probe devices is hosted on the victim {victimAddress}");

        // A rollout of v1 to every device: a first wave of 6, then the rest.
        // A 503 "unavailable" created nothing and asks the operator to try again (a registry ask that timed out on a
        // starved machine); anything else is the answer.
        var status = System.Net.HttpStatusCode.ServiceUnavailable;
        var body = "";
        for (var attempt = 0; attempt < 5 && status == System.Net.HttpStatusCode.ServiceUnavailable; attempt++)
            (status, body) = await cluster.PostJsonAsync(1, "admin/v1/rollouts", new
            {
                id = "failover",
                product = Product,
                version = "1.0",
                selector = new { deviceIds = fleet.Devices.Select(d => d.Id).ToList() },
                waves = new object[] { new { count = 6 }, new { percent = 100 } },
                maxConcurrent = DeviceCount,
                successThreshold = 1.0,
                errorThreshold = 0.0,
                maxAttemptsPerDevice = 10,
                @operator = "e2e",
            });
        Assert.True(status == System.Net.HttpStatusCode.Created, $"create rollout: {(int)status} {body}");

        // Devices run sessions until all are upgraded; after the 3rd acknowledged upgrade the victim is SIGKILLed.
        var completions = 0;
        var killedAt = TimeSpan.Zero;
        Task<TimeSpan[]>? unanswered = null;
        var sw = Stopwatch.StartNew();
        for (var round = 0; fleet.Devices.Any(d => d.AckedCompletions.IsEmpty); round++)
        {
            Assert.True(sw.Elapsed < Phase + Phase, $"devices not all upgraded after {sw.Elapsed.TotalSeconds:0} s: " +
                $"{string.Join(", ", fleet.Devices.Where(d => d.AckedCompletions.IsEmpty).Select(d => d.Id))}; rollout {await RolloutAsync(cluster)}");
            var pending = fleet.Devices.Where(d => d.AckedCompletions.IsEmpty).ToList();
            var sessions = pending.Select(async d =>
            {
                if (await fleet.SessionAsync(d, round, digests) && Interlocked.Increment(ref completions) == 3)
                {
                    var sinceKill = Stopwatch.StartNew();
                    await cluster.KillAsync(victim);
                    unanswered = Task.WhenAll(probed.Select(p => probes.FirstAnswerAsync(p, sinceKill, TimeSpan.FromMilliseconds(250), Phase)));
                    killedAt = total.Elapsed;
                    output.WriteLine($"SIGKILLed node {victim} ({victimAddress}) at {killedAt.TotalSeconds:0.0} s, hosting {moved.Count} devices");
                }
            });
            await Task.WhenAll(sessions);
            if (fleet.Devices.Any(d => d.AckedCompletions.IsEmpty)) await Task.Delay(200); // agents pace their retries too
        }
        Assert.False(cluster.Alive.Contains(victim), "the victim was never killed: the rollout finished before 3 upgrades were seen");
        output.WriteLine($"all {DeviceCount} devices upgraded at {total.Elapsed.TotalSeconds:0.0} s");

        // The victim's devices are answered again by the survivors within the failover budget (SIGKILL to the last
        // probe device's first 200): failure detection, the resolver's decision, removal and the shard hand-over.
        var answeredAfter = await unanswered!;
        output.WriteLine($"victim's probe devices ({probed.Count}) answered again after " +
                         string.Join(", ", answeredAfter.Order().Select(t => $"{t.TotalSeconds:0.0}")) + " s");
        Assert.True(answeredAfter.Max() <= FailoverBudget,
            $"a killed node's devices went unanswered for {answeredAfter.Max().TotalSeconds:0.0} s; the budget is {FailoverBudget.TotalSeconds:0} s");

        // The rollout completes (its coordinator re-reads the devices, including those whose shards moved).
        await LocalCluster.WaitUntilAsync("rollout Completed", Phase, async () =>
        {
            var r = await cluster.GetAsync<RolloutView>(1, "admin/v1/rollouts/failover");
            return (r.Status == RolloutStatus.Completed, $"{r.Status} wave {r.CurrentWave}: " +
                string.Join("; ", r.Waves.Select(w => $"{w.Succeeded}/{w.Total} ok, {w.InProgress} running, {w.Failed} failed")));
        });

        // Membership: the victim was downed and removed by the split-brain resolver; the survivors are Up.
        var survivors = cluster.Alive.Select(cluster.AkkaAddress).ToHashSet();
        await LocalCluster.WaitUntilAsync("victim removed", Phase, async () =>
        {
            var view = await cluster.GetAsync<ClusterView>(1, "admin/v1/cluster");
            return (view.Members.Select(m => m.Address).ToHashSet().SetEquals(survivors) && view.Members.All(m => m.Status == "Up")
                    && view.UnreachableCount == 0, LocalCluster.Describe(view));
        });

        // Shards moved: every device that lived on the victim is now hosted (and running) on a survivor.
        var after = await LocateAllAsync(cluster, fleet, node: 1);
        foreach (var id in moved)
        {
            Assert.Contains(after[id].Host, survivors);
            Assert.True(after[id].Alive, $"{id} should be running on {after[id].Host} after the failover");
            Assert.Equal(before[id].Shard, after[id].Shard);
        }
        var stats = await cluster.GetAsync<ShardingStatsView>(1, "admin/v1/sharding/stats");
        var deviceRegions = stats.Types.Single(t => t.TypeName == "device").Regions.Where(r => r.Shards > 0).Select(r => r.Address).ToHashSet();
        Assert.True(deviceRegions.IsSubsetOf(survivors), $"device shards still reported on {string.Join(", ", deviceRegions.Except(survivors))}");

        // Zero acknowledged events lost: every 200-answered check-in and completion is in the device's journal.
        var acknowledged = 0;
        foreach (var d in fleet.Devices)
        {
            var history = await AssertCheckInsJournaledAsync(cluster, d);
            Assert.Contains(history.Events, e => e.Type == nameof(WorkCompleted)
                                                 && e.Data.Deserialize<WorkCompleted>(AdminJson.Options)!.InstalledVersionId == v1.VersionId);
            var state = await cluster.GetAsync<DeviceState>(1, $"admin/v1/devices/{d.Id}");
            Assert.Equal(v1.VersionId, state.InstalledVersionId);
            acknowledged += d.AckedCheckIns.Count + d.AckedCompletions.Count;
        }
        foreach (var d in probes.Devices)
        {
            await AssertCheckInsJournaledAsync(cluster, d);
            acknowledged += d.AckedCheckIns.Count;
        }
        output.WriteLine($"{acknowledged} acknowledged events verified; {fleet.Devices.Sum(d => d.Unacknowledged)} unacknowledged attempts retried; " +
                         $"{moved.Count} devices moved; total {total.Elapsed.TotalSeconds:0.0} s");

        // What an SRE sees: `orch cluster show` lists exactly the survivors.
        var orch = await OrchAsync(cluster, "cluster", "show", "--json");
        var shown = JsonSerializer.Deserialize<ClusterView>(orch, AdminJson.Options)!.Members.Select(m => m.Address).ToHashSet();
        Assert.True(shown.SetEquals(survivors), $"orch cluster show: {orch}");
        var table = await OrchAsync(cluster, "cluster", "show");
        Assert.DoesNotContain(victimAddress, table);
        Assert.Contains("2 member(s), 0 unreachable", table);
        foreach (var n in cluster.Alive)
        {
            using var ready = await cluster.Admin(n).GetAsync("health/ready");
            Assert.True(ready.IsSuccessStatusCode, $"survivor {n} should stay Ready: {(int)ready.StatusCode}");
        }

        // The cluster heals: the victim restarts on the same address, rejoins through the seeds and serves devices again.
        await cluster.RestartAsync(victim);
        await cluster.WaitUntilAllUpAsync("3 Up members after the restart", Phase);
        var rejoined = fleet.Devices.Where((_, i) => i % 3 == 0).ToList();
        foreach (var d in rejoined)
        {
            var before2 = d.AckedCheckIns.Count;
            await LocalCluster.WaitUntilAsync($"{d.Id} checks in through the restarted node {victim}", Phase, async () =>
            {
                await fleet.SessionAsync(d, victim, digests, node: victim);
                return (d.AckedCheckIns.Count > before2, $"{d.Unacknowledged} unacknowledged");
            });
        }
        output.WriteLine($"node {victim} rejoined and served {rejoined.Count} check-ins; total {total.Elapsed.TotalSeconds:0.0} s");

        // A graceful stop (what Kubernetes does with SIGTERM): CoordinatedShutdown hands the shards off and the node
        // leaves, well within the pod's terminationGracePeriodSeconds, and no resolver decision is needed.
        var took = await cluster.StopGracefullyAsync(victim);
        var grace = TimeSpan.FromSeconds(int.Parse(System.Text.RegularExpressions.Regex.Match(
            await File.ReadAllTextAsync(Path.Combine(LocalCluster.RepoRoot(), "deploy", "k8s", "statefulset.yaml")),
            @"terminationGracePeriodSeconds:\s*(\d+)").Groups[1].Value));
        output.WriteLine($"graceful stop of node {victim} took {took.TotalSeconds:0.0} s (pod grace period {grace.TotalSeconds:0} s)");
        Assert.True(took < grace / 2, $"graceful stop took {took.TotalSeconds:0.0} s; the k8s grace period of {grace.TotalSeconds:0} s leaves too little margin");
        var view2 = await cluster.GetAsync<ClusterView>(1, "admin/v1/cluster");
        Assert.DoesNotContain(cluster.AkkaAddress(victim), view2.Members.Where(m => m.Status is "Up" or "Joining").Select(m => m.Address));
        foreach (var d in rejoined)
        {
            var count = d.AckedCheckIns.Count;
            await LocalCluster.WaitUntilAsync($"{d.Id} checks in after node {victim} left", Phase, async () =>
            {
                await fleet.SessionAsync(d, 0, digests);
                return (d.AckedCheckIns.Count > count, $"{d.Unacknowledged} unacknowledged");
            });
        }
        output.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Every check-in of <paramref name="d"/> answered 200 is in its journal, by the agentVersion marker it carried.</summary>
    private static async Task<DeviceHistoryView> AssertCheckInsJournaledAsync(LocalCluster cluster, SimulatedFleet.Device d)
    {
        var history = await cluster.GetAsync<DeviceHistoryView>(1, $"admin/v1/devices/{d.Id}/history");
        var journaled = history.Events.Where(e => e.Type == nameof(DeviceCheckedIn))
            .Select(e => e.Data.Deserialize<DeviceCheckedIn>(AdminJson.Options)!.AgentVersion).ToHashSet();
        foreach (var marker in d.AckedCheckIns)
            Assert.True(journaled.Contains(marker), $"{d.Id}: acknowledged check-in {marker} is missing from the journal");
        return history;
    }

    private static async Task<string> RolloutAsync(LocalCluster cluster)
    {
        try { var r = await cluster.GetAsync<RolloutView>(1, "admin/v1/rollouts/failover"); return $"{r.Status}, wave {r.CurrentWave}"; }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException) { return ex.Message; }
    }

    /// <summary>Shard, hosting node and liveness of every device (<c>/admin/v1/sharding/locate</c>).</summary>
    private static async Task<Dictionary<string, (string Shard, string Host, bool Alive)>> LocateAllAsync(LocalCluster cluster, SimulatedFleet fleet, int node)
    {
        var result = new Dictionary<string, (string, string, bool)>();
        foreach (var d in fleet.Devices)
        {
            ShardLocationView? loc = null;
            await LocalCluster.WaitUntilAsync($"{d.Id} located", Phase, async () =>
            {
                loc = await cluster.GetAsync<ShardLocationView>(node, $"admin/v1/sharding/locate/{d.Id}");
                return (loc.Address is not null, $"{loc.ShardId} on {loc.Address ?? "no node"}");
            });
            result[d.Id] = (loc!.ShardId, loc.Address!, loc.EntityAlive);
        }
        return result;
    }

    /// <summary>Runs the real <c>orch</c> against node 1 of the cluster.</summary>
    private async Task<string> OrchAsync(LocalCluster cluster, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(typeof(Orchestrator.Cli.OrchCli).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["ORCH_SERVER"] = cluster.HttpUrl(1).ToString().TrimEnd('/');
        psi.Environment["ORCH_TOKEN"] = cluster.AdminToken;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        output.WriteLine($"$ orch {string.Join(' ', args)}\n{await stdout}{await stderr}");
        Assert.True(p.ExitCode == 0, $"orch {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}");
        return await stdout;
    }
}
