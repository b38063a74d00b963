using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Cluster.Support;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster;

/// <summary>
/// A credential revoked or rotated through one node stops working on every node at once (issue 22): two real node
/// processes with the default 10-minute credential cache, the device's key cached on node 2 (its second check-in reads
/// no database), the change made through node 1's admin API; node 2 must refuse the old secret within seconds, long
/// before its cached key would expire.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterCredentialRevocationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Immediately = TimeSpan.FromSeconds(5);
    private const string ReadsMetric = "orch_gateway_credential_db_reads_total";

    [PostgresClusterFact]
    public async Task A_credential_revoked_or_rotated_through_one_node_is_refused_by_the_other_within_seconds_despite_a_ten_minute_cache()
    {
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output, nodes: 2,
            environment: new Dictionary<string, string> { ["ORCH_Credentials__CacheTtl"] = "00:10:00" });
        await cluster.WaitUntilAllUpAsync("2 Up members", TimeSpan.FromSeconds(90));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        using var store = new TestStore(cluster.StoreRoot);
        store.Publish("1.0", new Dictionary<string, byte[]> { ["etc/app.cfg"] = "x=1"u8.ToArray() }, "acme");

        // Revocation.
        var revokedSecret = await cluster.ProvisionAsync("rev-1");
        await CachedOnNode2Async(cluster, http, "rev-1", revokedSecret);
        using (var del = await cluster.Admin(1).DeleteAsync("admin/v1/devices/rev-1/credential"))
            Assert.Equal(HttpStatusCode.NoContent, del.StatusCode);
        var refusedAfter = await RefusedOnNode2Async(cluster, http, "rev-1", revokedSecret);
        output.WriteLine($"revoked through node 1: node 2 refused after {refusedAfter.TotalMilliseconds:F0} ms");

        // Rotation: the old secret is refused on node 2, the new one accepted there.
        var oldSecret = await cluster.ProvisionAsync("rot-1");
        await CachedOnNode2Async(cluster, http, "rot-1", oldSecret);
        var (status, body) = await cluster.PostJsonAsync(1, "admin/v1/devices/rot-1/credential", new { rotate = true });
        Assert.True(status == HttpStatusCode.Created, $"rotate: {(int)status} {body}");
        var newSecret = System.Text.Json.JsonSerializer.Deserialize<ProvisionResponse>(body, HttpProblems.Json)!.Secret;
        refusedAfter = await RefusedOnNode2Async(cluster, http, "rot-1", oldSecret);
        output.WriteLine($"rotated through node 1: node 2 refused the old secret after {refusedAfter.TotalMilliseconds:F0} ms");
        Assert.Equal(HttpStatusCode.OK, await CheckInAsync(cluster, http, 2, "rot-1", newSecret));
    }

    // Two check-ins through node 2; the second must be served from node 2's cache, or the test would prove nothing.
    private static async Task CachedOnNode2Async(LocalCluster cluster, HttpClient http, string device, string secret)
    {
        Assert.Equal(HttpStatusCode.OK, await CheckInAsync(cluster, http, 2, device, secret));
        var reads = await FreshReadsOnNode2Async(cluster);
        Assert.Equal(HttpStatusCode.OK, await CheckInAsync(cluster, http, 2, device, secret));
        Assert.Equal(reads, await FreshReadsOnNode2Async(cluster));
    }

    // The Prometheus exporter answers a scrape from its response cache (300 ms by default), so a scrape right after
    // another can show the counter as it was before the check-in just made.
    private static async Task<double> FreshReadsOnNode2Async(LocalCluster cluster)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(400));
        return await cluster.MetricAsync(2, ReadsMetric);
    }

    private static async Task<TimeSpan> RefusedOnNode2Async(LocalCluster cluster, HttpClient http, string device, string secret)
    {
        var since = Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            status = await CheckInAsync(cluster, http, 2, device, secret);
            if (status == HttpStatusCode.Unauthorized) break;
            Assert.Equal(HttpStatusCode.OK, status);
            await Task.Delay(100);
        } while (since.Elapsed < TimeSpan.FromSeconds(60));
        Assert.True(status == HttpStatusCode.Unauthorized, $"node 2 still accepted {device}'s old secret {since.Elapsed} after the change");
        Assert.True(since.Elapsed <= Immediately, $"node 2 accepted {device}'s old secret for {since.Elapsed} after the change (bound {Immediately})");
        return since.Elapsed;
    }

    private static async Task<HttpStatusCode> CheckInAsync(LocalCluster cluster, HttpClient http, int node, string device, string secret)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.HttpUrl(node), $"v1/devices/{device}/check-in"))
        {
            Content = JsonContent.Create(new CheckInRequest("acme", 0, "digest-0", null, "1.0.0"), options: HttpProblems.Json),
        };
        await DeviceSigning.SignAsync(req, device, secret);
        using var res = await http.SendAsync(req);
        return res.StatusCode;
    }
}
