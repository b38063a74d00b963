using System.Text.Json;
using Orchestrator.EndToEnd.Tests.Cluster.Support;
using Orchestrator.Messages.Admin;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster;

/// <summary>
/// The local cluster forms through Akka Cluster Bootstrap with config discovery and no seed list (deploy/local/cluster.sh):
/// three real node processes, each serving the contact-point route from its own HTTP server; the lowest contact point
/// forms the cluster, the others join it, and a killed node that comes back joins again through bootstrap.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterBootstrapTests(ITestOutputHelper output)
{
    [PostgresClusterFact]
    public async Task Three_nodes_form_one_cluster_through_bootstrap_and_a_restarted_node_joins_it_again()
    {
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output);
        await cluster.WaitUntilAllUpAsync("3 Up members", TimeSpan.FromSeconds(120));
        var all = Enumerable.Range(1, cluster.Nodes).Select(cluster.AkkaAddress).ToHashSet();

        // Every node answers the contact-point route with itself and the three members.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        for (var n = 1; n <= cluster.Nodes; n++)
        {
            var (self, members) = await SeedNodesAsync(http, cluster, n);
            Assert.Equal(cluster.AkkaAddress(n), self);
            Assert.True(all.SetEquals(members), $"node {n} lists {string.Join(", ", members)}");
        }

        // Node 1 (lowest contact point) formed the cluster; nodes 2 and 3 joined it through bootstrap, not through seeds.
        var log1 = await File.ReadAllTextAsync(cluster.NodeLog(1));
        Assert.Contains($"Initiating new cluster, self-joining [{cluster.AkkaAddress(1)}]", log1);
        for (var n = 2; n <= cluster.Nodes; n++)
            Assert.Contains($"Joining [{cluster.AkkaAddress(n)}] to existing cluster", await File.ReadAllTextAsync(cluster.NodeLog(n)));
        foreach (var n in Enumerable.Range(1, cluster.Nodes))
            Assert.DoesNotContain("bailing out of the bootstrap process", await File.ReadAllTextAsync(cluster.NodeLog(n)));

        // A crashed node is downed by the survivors; started again, it finds the cluster through its contact points.
        await cluster.KillAsync(3);
        // Downed and removed, as node 1 sees the membership (the contact-point route already leaves out an unreachable
        // member, so it cannot tell removal from unreachability).
        await LocalCluster.WaitUntilAsync("node 3 removed", TimeSpan.FromSeconds(90), async () =>
        {
            var view = await cluster.GetAsync<ClusterView>(1, "admin/v1/cluster");
            return (view.Members.All(m => m.Address != cluster.AkkaAddress(3)), LocalCluster.Describe(view));
        });
        Assert.DoesNotContain(cluster.AkkaAddress(3), (await SeedNodesAsync(http, cluster, 1)).Members);
        await cluster.RestartAsync(3);
        await cluster.WaitUntilAllUpAsync("3 Up members after the restart", TimeSpan.FromSeconds(120));
        var log3 = await File.ReadAllTextAsync(cluster.NodeLog(3));
        Assert.Equal(2, CountOf(log3, $"Joining [{cluster.AkkaAddress(3)}] to existing cluster"));
    }

    [PostgresClusterFact]
    public async Task A_node_restarted_before_its_crashed_incarnation_is_downed_replaces_it_and_joins()
    {
        // The resolver waits a minute before it downs anyone, so the crashed incarnation is certainly still a member
        // (unreachable, not downed) when the new one asks to join: the new incarnation itself must get the old one removed.
        var slowDowning = new Dictionary<string, string> { ["ORCH_Node__SplitBrainStableAfter"] = "00:01:00" };
        await using var cluster = await LocalCluster.StartAsync(PostgresClusterFactAttribute.RequiredConnectionString(), output, environment: slowDowning);
        await cluster.WaitUntilConvergedAsync("3 Up members on every node", TimeSpan.FromSeconds(120));

        // A pod that crashes after it had fully joined and comes back under the same address as soon as its kubelet
        // restarts it (10 s, the kubelet's first restart delay), well before the resolver would down the old incarnation.
        // (Sooner than that, Akka's classic transport can hand the new incarnation's first inbound association to the old
        // one's endpoint while it is being torn down, and every answer to the new node is then lost.)
        await cluster.KillAsync(3);
        await Task.Delay(TimeSpan.FromSeconds(10));
        var restarted = System.Diagnostics.Stopwatch.StartNew();
        await cluster.RestartAsync(3);
        await cluster.WaitUntilAllUpAsync("3 Up members after the quick restart", TimeSpan.FromSeconds(120));
        output.WriteLine($"3 Up members {restarted.Elapsed.TotalSeconds:0.0} s after the restart began");
        var survivors = await File.ReadAllTextAsync(cluster.NodeLog(1)) + await File.ReadAllTextAsync(cluster.NodeLog(2));
        Assert.Contains($"New incarnation of existing member [UniqueAddress: ({cluster.AkkaAddress(3)}, ", survivors);
        Assert.DoesNotContain("SBR took decision", survivors);

        // The member at node 3's address is the new incarnation: it serves the cluster view and counts three Up members.
        var view = await cluster.GetAsync<ClusterView>(3, "admin/v1/cluster");
        Assert.Equal(3, view.Members.Count(m => m.Status == "Up"));
        Assert.Equal(0, view.UnreachableCount);
        var log3 = await File.ReadAllTextAsync(cluster.NodeLog(3));
        Assert.Equal(2, CountOf(log3, $"Joining [{cluster.AkkaAddress(3)}] to existing cluster"));
    }

    private static async Task<(string Self, HashSet<string> Members)> SeedNodesAsync(HttpClient http, LocalCluster cluster, int node)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(cluster.HttpUrl(node), "bootstrap/seed-nodes")));
        static string Address(JsonElement a) =>
            $"{a.GetProperty("Protocol").GetString()}://{a.GetProperty("System").GetString()}@{a.GetProperty("Host").GetString()}:{a.GetProperty("Port").GetInt32()}";
        return (Address(doc.RootElement.GetProperty("SelfNode")),
            doc.RootElement.GetProperty("Nodes").EnumerateArray().Select(m => Address(m.GetProperty("Node"))).ToHashSet());
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }
}
