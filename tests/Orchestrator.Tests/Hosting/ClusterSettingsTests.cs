using Akka.Cluster.SBR;
using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Hosting;

/// <summary>The multi-node settings: bind vs advertised host name, seed addresses, split-brain resolver.</summary>
public sealed class ClusterSettingsTests
{
    private static NodeSettings Load(Dictionary<string, string?> values) =>
        NodeSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Split_brain_settings_reach_akka_as_the_resolver_reads_them()
    {
        var s = Load(new() { ["Node:SplitBrainStrategy"] = "keep-oldest", ["Node:SplitBrainStableAfter"] = "00:00:07" });
        var config = ConfigurationFactory.ParseString(AkkaBootstrap.SplitBrainHocon(s.Node));
        Assert.Equal("Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster", config.GetString("akka.cluster.downing-provider-class"));
        // Akka's own settings class parses the section (it throws on an unknown strategy), over the cluster defaults.
        using var system = Akka.Actor.ActorSystem.Create("sbr-check", config.WithFallback(ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
            """)));
        Assert.Equal(typeof(SplitBrainResolverProvider), Akka.Cluster.Cluster.Get(system).Settings.DowningProviderType);
        var sbr = new SplitBrainResolverSettings(system.Settings.Config);
        Assert.Equal("keep-oldest", sbr.DowningStrategy);
        Assert.Equal(TimeSpan.FromSeconds(7), sbr.DowningStableAfter);
    }

    [Fact]
    public async Task A_real_node_binds_one_name_advertises_another_and_runs_the_resolver()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Node:BindHostname"] = "127.0.0.1",
            ["Node:Hostname"] = "localhost",
            ["Node:SplitBrainStableAfter"] = "00:00:09",
            ["Node:FailureDetectorHeartbeatInterval"] = "00:00:00.750",
            ["Node:FailureDetectorAcceptablePause"] = "00:00:04",
            ["Node:DownRemovalMargin"] = "00:00:02",
        });
        var cluster = Akka.Cluster.Cluster.Get(node.Services.GetRequiredService<Akka.Actor.ActorSystem>());
        // Ready means Up: the node joined itself under the advertised name while listening on the bind address.
        Assert.Equal("localhost", cluster.SelfAddress.Host);
        Assert.Equal(Akka.Cluster.MemberStatus.Up, cluster.SelfMember.Status);
        Assert.Equal(typeof(SplitBrainResolverProvider), cluster.Settings.DowningProviderType);
        Assert.Equal(TimeSpan.FromSeconds(9), new SplitBrainResolverSettings(cluster.System.Settings.Config).DowningStableAfter);
        // The failover settings as the cluster, sharding and the resolver read them.
        Assert.Equal(TimeSpan.FromMilliseconds(750), cluster.Settings.HeartbeatInterval);
        Assert.Equal(TimeSpan.FromSeconds(4), cluster.Settings.FailureDetectorConfig.GetTimeSpan("acceptable-heartbeat-pause"));
        Assert.Equal(TimeSpan.FromSeconds(2), cluster.DowningProvider.DownRemovalMargin);
        Assert.Equal(TimeSpan.FromMilliseconds(500), Akka.Cluster.Sharding.ClusterShardingSettings.Create(cluster.System).TuningParameters.RetryInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(250), cluster.Settings.LeaderActionsInterval);
    }

    [Fact]
    public void A_zero_removal_margin_leaves_akkas_default_of_the_stable_after()
    {
        var s = Load(new() { ["Node:SplitBrainStableAfter"] = "00:00:05", ["Node:DownRemovalMargin"] = "00:00:00" });
        using var system = Akka.Actor.ActorSystem.Create("margin-check", ConfigurationFactory.ParseString(AkkaBootstrap.SplitBrainHocon(s.Node))
            .WithFallback(ConfigurationFactory.ParseString("""
                akka.actor.provider = cluster
                akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
                """)));
        Assert.Equal(TimeSpan.FromSeconds(5), Akka.Cluster.Cluster.Get(system).DowningProvider.DownRemovalMargin);
    }

    [Fact]
    public void Defaults_are_keep_majority_after_2_seconds_binding_the_advertised_name()
    {
        var s = Load([]);
        Assert.Equal("keep-majority", s.Node.SplitBrainStrategy);
        Assert.Equal(TimeSpan.FromSeconds(2), s.Node.SplitBrainStableAfter);
        Assert.Equal(TimeSpan.FromMilliseconds(500), s.Node.FailureDetectorHeartbeatInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), s.Node.FailureDetectorAcceptablePause);
        Assert.Equal(TimeSpan.FromSeconds(1), s.Node.DownRemovalMargin);
        Assert.Null(s.Node.BindHostname);
    }

    [Fact]
    public void Bad_cluster_settings_are_named_with_the_fix()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new()
        {
            ["Node:SplitBrainStrategy"] = "auto-down",
            ["Node:SplitBrainStableAfter"] = "00:00:00.200",
            ["Node:SeedNodes:0"] = "akka.tcp://other@10.0.0.1:4053",
            ["Node:FailureDetectorHeartbeatInterval"] = "00:00:02",
            ["Node:FailureDetectorAcceptablePause"] = "00:00:01",
            ["Node:DownRemovalMargin"] = "-00:00:01",
        }));
        Assert.Contains("Node:FailureDetectorAcceptablePause 00:00:01 is shorter than Node:FailureDetectorHeartbeatInterval (00:00:02)", ex.Message);
        Assert.Contains("Node:DownRemovalMargin -00:00:01 is out of range", ex.Message);
        Assert.Contains("Node:SplitBrainStrategy 'auto-down' is unknown; use one of keep-majority, keep-oldest, down-all", ex.Message);
        Assert.Contains("Node:SplitBrainStableAfter", ex.Message);
        Assert.Contains("names another actor system; this node's is 'orchestrator'", ex.Message);
    }
}
