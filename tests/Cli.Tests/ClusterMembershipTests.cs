using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Orchestrator.Cli.Tests.Support;

namespace Orchestrator.Cli.Tests;

/// <summary><c>orch cluster leave/down</c> against a real second member that joins the node's cluster.</summary>
[Collection(LiveNodeCollection.Name)]
public sealed class ClusterMembershipTests(LiveNode node)
{
    /// <summary>Starts a bare cluster member (role "spare", no shards) joined to the node; returns it once Up.</summary>
    private async Task<ActorSystem> JoinSpareAsync()
    {
        var self = (await node.Orch("cluster", "show", "--json")).Json.GetProperty("selfAddress").GetString()!;
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.cluster.roles = [spare]
            akka.coordinated-shutdown.exit-clr = off
            akka.loglevel = WARNING
            """);
        var system = ActorSystem.Create("orchestrator", config);
        var joined = new TaskCompletionSource();
        Cluster.Get(system).RegisterOnMemberUp(() => joined.TrySetResult());
        Cluster.Get(system).Join(Address.Parse(self));
        await joined.Task.WaitAsync(TimeSpan.FromSeconds(20));
        return system;
    }

    private async Task<string?> StatusOfAsync(string address)
    {
        var members = (await node.Orch("cluster", "show", "--json")).Json.GetProperty("members").EnumerateArray();
        return members.Where(m => m.GetProperty("address").GetString() == address).Select(m => m.GetProperty("status").GetString()).FirstOrDefault();
    }

    private async Task WaitRemovedAsync(string address)
    {
        for (var i = 0; i < 300; i++)
        {
            if (await StatusOfAsync(address) is null) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"{address} was not removed within 30 s (status {await StatusOfAsync(address)}).");
    }

    [Fact]
    public async Task Leave_moves_a_member_out_gracefully()
    {
        var spare = await JoinSpareAsync();
        try
        {
            var address = Cluster.Get(spare).SelfAddress.ToString();
            Assert.Equal("Up", await StatusOfAsync(address));
            var table = await node.Orch("cluster", "show");
            Assert.Contains("spare", table.Out);

            var run = await node.Orch("cluster", "leave", address, "--json");
            Assert.Equal(0, run.ExitCode);
            Assert.Equal("leave", run.Json.GetProperty("action").GetString());
            Assert.Equal("Up", run.Json.GetProperty("previousStatus").GetString());
            await WaitRemovedAsync(address);
            await spare.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(20)); // a member that left shuts down
        }
        finally { await spare.Terminate(); }
    }

    [Fact]
    public async Task Down_removes_a_member()
    {
        var spare = await JoinSpareAsync();
        try
        {
            var address = Cluster.Get(spare).SelfAddress.ToString();
            var run = await node.Orch("cluster", "down", address);
            Assert.Equal(0, run.ExitCode);
            Assert.Contains("Marked " + address, run.Out);
            await WaitRemovedAsync(address);
        }
        finally { await spare.Terminate(); }
    }
}
