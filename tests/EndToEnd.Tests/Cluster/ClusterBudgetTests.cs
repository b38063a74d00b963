using System.Globalization;
using System.Text.Json.Nodes;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Cluster.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster;

/// <summary>
/// Download budgets are cluster-wide (issue 16, item 2): two real node processes (deploy/local/cluster.sh, one
/// PostgreSQL) behind a round-robin load balancer, one real orch-agent whose requests alternate between the two
/// gateways. The agent paces itself by its grant; the budgets are what hold a device that does not (an old or modified
/// agent), so the balancer strips the rate from the grant and only the gateways' enforcement limits the device. With
/// per-gateway budgets it would get each gateway's limit, about twice the device limit; with the cluster-wide budget
/// its bytes stay within burst + rate x time, and it installs with zero failure reports (429 is pacing).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterBudgetTests(ITestOutputHelper output)
{
    private const long Rate = 200_000;
    private const long Burst = 300_000;
    private const string Product = "acme";

    [PostgresClusterFact]
    public async Task One_device_through_two_gateways_stays_within_its_cluster_wide_limit_and_installs_without_failures()
    {
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output, nodes: 2,
            environment: new Dictionary<string, string>
            {
                ["ORCH_Throttle__DeviceBytesPerSecond"] = Rate.ToString(CultureInfo.InvariantCulture),
                ["ORCH_Throttle__DeviceBurstBytes"] = Burst.ToString(CultureInfo.InvariantCulture),
                ["ORCH_Devices__RetryBase"] = "00:00:00.100",
                ["ORCH_Devices__RetryCap"] = "00:00:00.500",
            });
        await cluster.WaitUntilAllUpAsync("2 Up members", TimeSpan.FromSeconds(90));

        // About 3 MB of incompressible content: some 15 s at the device limit, some 7 s at twice the limit.
        using var store = new TestStore(cluster.StoreRoot);
        var v1 = store.Publish("1.0", new Dictionary<string, byte[]>
        {
            ["bin/app"] = Releases.Bytes(31, 1_800_000),
            ["lib/core.so"] = Releases.Bytes(32, 1_200_000),
            ["etc/app.cfg"] = "x=1"u8.ToArray(),
        }, Product, packs: false); // chunk objects: each one a request either gateway may serve and charge
        var secret = await cluster.ProvisionAsync("rr-1");
        var (status, body) = await cluster.PostJsonAsync(1, "admin/v1/rollouts", new
        {
            id = "budget", product = Product, version = "1.0", selector = new { deviceIds = new[] { "rr-1" } },
            waves = new object[] { new { percent = 100 } }, successThreshold = 1.0, @operator = "e2e",
        });
        Assert.True(status == System.Net.HttpStatusCode.Created, $"create rollout: {(int)status} {body}");

        await using var balancer = await RoundRobinProxy.StartAsync([cluster.HttpUrl(1), cluster.HttpUrl(2)]);
        balancer.IgnoreGrantRate = true;
        using var device = new TestDevice(balancer.BaseUrl, credential: secret, deviceId: "rr-1",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 0, Parallelism = 4, BackoffCapMilliseconds = 500 });
        var failuresBefore = await SumAsync(cluster, "orch_gateway_reports_total", "kind=\"failure\"");

        var run = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine($"--- agent exit {run.ExitCode}\n{run.Output}{run.Error}");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));

        // Both gateways served the device, and both refused it at times (the budget paced it on each).
        var chunks = balancer.Chunks;
        var sent = chunks.Where(c => c.Status is 200 or 206).ToList();
        var refused = chunks.Where(c => c.Status == 429).ToList();
        var bytes = sent.Sum(c => c.BodyBytes);
        var perGateway = Enumerable.Range(0, 2).Select(g => sent.Where(c => c.Gateway == g).Sum(c => c.BodyBytes)).ToArray();
        output.WriteLine($"chunk bytes {bytes} (gateway 1: {perGateway[0]}, gateway 2: {perGateway[1]}); {sent.Count} answers with a body, " +
            $"{refused.Count} answers 429 (gateway 1: {refused.Count(c => c.Gateway == 0)}, gateway 2: {refused.Count(c => c.Gateway == 1)})");
        Assert.All(perGateway, b => Assert.True(b > bytes / 4, $"one gateway served only {b} of {bytes} bytes: the device did not use both"));
        Assert.True(refused.Count > 0, "no 429 at all: the device was never held by its budget and the test exercised nothing");

        // Cluster-wide: at every moment, what the device received since its first chunk request is within one burst
        // plus the device rate (10% and one chunk of slack for timing on a shared machine).
        var t0 = chunks.Min(c => c.Started);
        long received = 0;
        var worst = (Excess: double.MinValue, Received: 0L, At: 0.0, Allowed: 0.0);
        foreach (var c in sent.OrderBy(c => c.Ended))
        {
            received += c.BodyBytes;
            var at = (c.Ended - t0).TotalSeconds;
            var allowed = Burst + Rate * at * 1.1 + 64 * 1024;
            if (received - allowed > worst.Excess) worst = (received - allowed, received, at, allowed);
        }
        var duration = (sent.Max(c => c.Ended) - t0).TotalSeconds;
        var rate = (bytes - Burst) / duration;
        output.WriteLine($"download took {duration:0.0} s: {rate:0} B/s beyond the burst (limit {Rate} B/s); " +
            $"closest approach to the bound: {worst.Received} bytes at {worst.At:0.00} s where {worst.Allowed:0} are allowed");
        Assert.True(worst.Excess <= 0,
            $"{worst.Received} bytes received {worst.At:0.00} s after the first request; the cluster-wide device budget allows {worst.Allowed:0}");
        Assert.InRange(rate, Rate * 0.5, Rate * 1.1);

        // Pacing, never failing: no failure report, no failed attempt in the journal, the rollout completes.
        Assert.Equal(failuresBefore, await SumAsync(cluster, "orch_gateway_reports_total", "kind=\"failure\""));
        var journal = JsonNode.Parse(await cluster.Admin(1).GetStringAsync("admin/v1/devices/rr-1/history?last=1000"))!["events"]!.AsArray()
            .Select(e => e!["type"]!.GetValue<string>()).ToList();
        Assert.DoesNotContain("AttemptFailed", journal);
        Assert.Contains("WorkCompleted", journal);
        await LocalCluster.WaitUntilAsync("rollout Completed", TimeSpan.FromSeconds(60), async () =>
        {
            var r = JsonNode.Parse(await cluster.Admin(2).GetStringAsync("admin/v1/rollouts/budget"))!;
            var s = r["status"]!.GetValue<string>();
            return (s == "Completed", s);
        });

        // The gateways' byte counters agree with what the device received, and the refusals are counted on both.
        Assert.Equal(bytes, await SumAsync(cluster, "orch_gateway_chunk_bytes_total"));
        Assert.Equal(refused.Count, await SumAsync(cluster, "orch_gateway_throttled_total"));
        Assert.True(await SumAsync(cluster, "orch_budget_leases_total") > 0, "no budget entity granted a lease");
    }

    [PostgresClusterFact]
    public async Task A_rollout_cap_holds_cluster_wide_for_devices_on_different_gateways()
    {
        // Honest agents (they pace themselves at their grant, min(device rate, cap)); each reaches a different node,
        // so per-gateway budgets would let the rollout send about twice its cap.
        const long Cap = 150_000;
        const long RolloutBurst = Orchestrator.ChunkStore.Throttling.DownloadThrottle.DefaultMinRolloutBurstBytes; // max(cap, the smallest rollout burst)
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output, nodes: 2,
            environment: new Dictionary<string, string>
            {
                ["ORCH_Devices__RetryBase"] = "00:00:00.100",
                ["ORCH_Devices__RetryCap"] = "00:00:00.500",
            });
        await cluster.WaitUntilAllUpAsync("2 Up members", TimeSpan.FromSeconds(90));
        using var store = new TestStore(cluster.StoreRoot);
        var v1 = store.Publish("1.0", new Dictionary<string, byte[]>
        {
            ["bin/app"] = Releases.Bytes(41, 900_000),
            ["lib/core.so"] = Releases.Bytes(42, 600_000),
        }, Product, packs: false);
        string[] ids = ["cap-1", "cap-2"];
        var secrets = new List<string>();
        foreach (var id in ids) secrets.Add(await cluster.ProvisionAsync(id));
        var created = await cluster.PostJsonAsync(1, "admin/v1/rollouts", new
        {
            id = "capped", product = Product, version = "1.0", selector = new { deviceIds = ids },
            waves = new object[] { new { percent = 100 } }, successThreshold = 1.0, maxConcurrent = 2, bandwidthBytesPerSecond = Cap, @operator = "e2e",
        });
        Assert.True(created.Status == System.Net.HttpStatusCode.Created, $"create rollout: {(int)created.Status} {created.Body}");

        // One recording proxy per node (one gateway each), so each device's requests all reach "its" node.
        await using var toNode1 = await RoundRobinProxy.StartAsync([cluster.HttpUrl(1)]);
        await using var toNode2 = await RoundRobinProxy.StartAsync([cluster.HttpUrl(2)]);
        var devices = ids.Select((id, i) => new TestDevice(i == 0 ? toNode1.BaseUrl : toNode2.BaseUrl, credential: secrets[i], deviceId: id,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 0, Parallelism = 4, BackoffCapMilliseconds = 500 })).ToList();
        try
        {
            var failuresBefore = await SumAsync(cluster, "orch_gateway_reports_total", "kind=\"failure\"");
            var runs = await Task.WhenAll(devices.Select(d =>
                AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180))));
            foreach (var (run, i) in runs.Select((r, i) => (r, i)))
            {
                output.WriteLine($"--- {ids[i]} exit {run.ExitCode}\n{run.Output}{run.Error}");
                Assert.Equal(0, run.ExitCode);
                Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(devices[i]));
            }

            var all = toNode1.Chunks.Concat(toNode2.Chunks).ToList();
            var sent = all.Where(c => c.Status is 200 or 206).OrderBy(c => c.Ended).ToList();
            var bytes = sent.Sum(c => c.BodyBytes);
            var t0 = all.Min(c => c.Started);
            long received = 0;
            var worst = (Excess: double.MinValue, Received: 0L, At: 0.0, Allowed: 0.0);
            foreach (var c in sent)
            {
                received += c.BodyBytes;
                var at = (c.Ended - t0).TotalSeconds;
                var allowed = RolloutBurst + Cap * at * 1.1 + 64 * 1024;
                if (received - allowed > worst.Excess) worst = (received - allowed, received, at, allowed);
            }
            var duration = (sent.Max(c => c.Ended) - t0).TotalSeconds;
            var rate = (bytes - RolloutBurst) / duration;
            output.WriteLine($"rollout chunk bytes {bytes} (node 1: {toNode1.Chunks.Where(c => c.Status is 200 or 206).Sum(c => c.BodyBytes)}, " +
                $"node 2: {toNode2.Chunks.Where(c => c.Status is 200 or 206).Sum(c => c.BodyBytes)}); 429 answers {all.Count(c => c.Status == 429)}; " +
                $"took {duration:0.0} s: {rate:0} B/s beyond the burst (cap {Cap} B/s); closest approach: {worst.Received} bytes at {worst.At:0.00} s where {worst.Allowed:0} are allowed");
            Assert.True(worst.Excess <= 0,
                $"{worst.Received} bytes received {worst.At:0.00} s after the first request; the rollout's cluster-wide cap allows {worst.Allowed:0}");
            Assert.InRange(rate, Cap * 0.5, Cap * 1.1);
            Assert.Equal(failuresBefore, await SumAsync(cluster, "orch_gateway_reports_total", "kind=\"failure\""));
            await LocalCluster.WaitUntilAsync("rollout Completed", TimeSpan.FromSeconds(60), async () =>
            {
                var r = JsonNode.Parse(await cluster.Admin(1).GetStringAsync("admin/v1/rollouts/capped"))!;
                var s = r["status"]!.GetValue<string>();
                return (s == "Completed", r.ToJsonString());
            });
        }
        finally
        {
            foreach (var d in devices) d.Dispose();
        }
    }

    /// <summary>Sum over every node of a Prometheus metric family's samples whose labels contain <paramref name="labels"/>.</summary>
    private static async Task<double> SumAsync(LocalCluster cluster, string name, params string[] labels)
    {
        double sum = 0;
        for (var n = 1; n <= cluster.Nodes; n++) sum += await cluster.MetricAsync(n, name, labels);
        return sum;
    }
}
