using Akka.Actor;
using Akka.Cluster.Tools.Singleton;

namespace Orchestrator.Node.Channels;

/// <summary>Registry key (Akka.Hosting) of the proxy to the channel directory singleton.</summary>
public sealed class ChannelDirectoryProxy
{
    private ChannelDirectoryProxy() { }
}

/// <summary>Tunables of the channel directory and the node caches.</summary>
/// <param name="RefreshInterval">How often each node's cache re-reads the whole directory: the bound on staleness when a publish is lost.</param>
/// <param name="AskTimeout">Timeout of one ask to the directory.</param>
/// <param name="SnapshotEvery">The directory saves a snapshot after this many events.</param>
/// <param name="Clock">Clock of event timestamps.</param>
public sealed record ChannelSettings(TimeSpan RefreshInterval, TimeSpan AskTimeout, int SnapshotEvery, TimeProvider Clock)
{
    /// <summary>Refresh every 10 s (the node sets <c>Gateway:ChannelRefreshInterval</c>), asks 5 s, snapshot every 100 events, system clock.</summary>
    public static ChannelSettings Default { get; } = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5), 100, TimeProvider.System);
}

/// <summary>
/// Starts the <see cref="ChannelDirectoryActor"/> cluster singleton (on nodes with role <c>rollouts</c>, next to the
/// rollout coordinator that moves channels), its proxy (every node) and this node's cache subscriber.
/// </summary>
public static class ChannelHosting
{
    /// <summary>Cluster role hosting the singleton.</summary>
    public const string Role = "rollouts";

    /// <summary>Name of the singleton manager actor.</summary>
    public const string ManagerName = "channel-directory";

    /// <summary>
    /// Starts the singleton manager when <paramref name="hostsSingleton"/>, the proxy and the cache subscriber; returns the
    /// proxy. Only through <see cref="Rollouts.RolloutHosting.AddRollouts"/>, which registers the proxy with Akka.Hosting.
    /// </summary>
    /// <param name="system">Actor system (cluster provider, persistence configured).</param>
    /// <param name="cache">This node's cache (attached to the proxy here).</param>
    /// <param name="settings">Tunables.</param>
    /// <param name="hostsSingleton">True on nodes with role <see cref="Role"/>.</param>
    internal static IActorRef Start(ActorSystem system, ChannelCache cache, ChannelSettings settings, bool hostsSingleton)
    {
        if (hostsSingleton)
        {
            system.ActorOf(ClusterSingletonManager.Props(
                ChannelDirectoryActor.Props(settings.Clock, settings.SnapshotEvery),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(Role).WithSingletonName("directory")), ManagerName);
        }
        var proxy = system.ActorOf(ClusterSingletonProxy.Props($"/user/{ManagerName}",
            ClusterSingletonProxySettings.Create(system).WithRole(Role).WithSingletonName("directory")), ManagerName + "-proxy");
        cache.Attach(proxy, settings.AskTimeout);
        system.ActorOf(ChannelCacheSubscriber.Props(cache, proxy, settings), "channel-cache");
        return proxy;
    }
}
