using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Akka.Hosting;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Rollouts;

/// <summary>Registry key (Akka.Hosting) of the proxy to the rollout coordinator singleton.</summary>
public sealed class RolloutCoordinatorProxy
{
    private RolloutCoordinatorProxy() { }
}

/// <summary>What the node tells <see cref="RolloutHosting.AddRollouts"/>.</summary>
/// <param name="HostsSingletons">True on nodes with role <see cref="RolloutHosting.Role"/>: they host the channel directory and rollout coordinator singletons.</param>
/// <param name="Rollouts">Rollout tunables.</param>
/// <param name="ChannelCache">This node's channel cache (attached to the directory's proxy); null with <paramref name="Channels"/>.</param>
/// <param name="Channels">Channel directory tunables; null: no channel directory, rollouts move no channels (tests of rollouts alone).</param>
public sealed record RolloutHostingOptions(bool HostsSingletons, RolloutSettings Rollouts, ChannelCache? ChannelCache, ChannelSettings? Channels);

/// <summary>Starts the <see cref="RolloutCoordinator"/> cluster singleton (on nodes with role <c>rollouts</c>) and its proxy (on every node).</summary>
public static class RolloutHosting
{
    /// <summary>Cluster role hosting the singleton.</summary>
    public const string Role = "rollouts";

    /// <summary>Name of the singleton manager actor.</summary>
    public const string ManagerName = "rollout-coordinator";

    /// <summary>
    /// The rollouts' one Akka.Hosting extension: the channel directory (<see cref="ChannelDirectoryProxy"/>) and the
    /// rollout coordinator (<see cref="RolloutCoordinatorProxy"/>), singletons on nodes that host them and proxies on
    /// every node. Register <c>AddDeviceActors</c> first: the coordinator sends to the device region.
    /// </summary>
    public static AkkaConfigurationBuilder AddRollouts(this AkkaConfigurationBuilder builder, RolloutHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return builder.WithActors((system, registry) =>
        {
            IActorRef? channels = null;
            if (options.Channels is { } channelSettings)
            {
                var cache = options.ChannelCache ?? throw new ArgumentException("A channel directory needs the node's channel cache.", nameof(options));
                channels = ChannelHosting.Start(system, cache, channelSettings, options.HostsSingletons);
                registry.Register<ChannelDirectoryProxy>(channels);
            }
            // A coordinator on a node that already runs the device registry (gateway nodes) shares it: one row per device per node, not two.
            var registryProps = registry.TryGet<DeviceRegistryActor>(out var deviceRegistry) ? DeviceRegistry.ForwardingTo(deviceRegistry) : DeviceRegistry.Props();
            registry.Register<RolloutCoordinatorProxy>(Start(system, registry.Get<DeviceShardRegion>(), options.Rollouts, options.HostsSingletons, channels,
                registryProps));
        });
    }

    /// <summary>
    /// Starts the singleton manager when this node has <paramref name="hostsSingleton"/>, and returns a proxy that
    /// routes to wherever the singleton runs (buffering while it moves).
    /// </summary>
    /// <param name="system">Actor system (cluster provider, persistence configured).</param>
    /// <param name="devices">Device shard region or proxy.</param>
    /// <param name="settings">Rollout tunables.</param>
    /// <param name="hostsSingleton">True on nodes with role <see cref="Role"/>.</param>
    /// <param name="channels">Channel directory (proxy) that rollouts report their status to; null: no channel moves (tests).</param>
    /// <param name="registryProps">The coordinator's device registry (the read model itself, or a forwarder to the node's).</param>
    private static IActorRef Start(ActorSystem system, IActorRef devices, RolloutSettings settings, bool hostsSingleton, IActorRef? channels,
        Props registryProps)
    {
        if (hostsSingleton)
        {
            system.ActorOf(ClusterSingletonManager.Props(
                RolloutCoordinator.Props(devices, registryProps, settings, channels),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(Role).WithSingletonName("coordinator")), ManagerName);
        }
        return system.ActorOf(ClusterSingletonProxy.Props($"/user/{ManagerName}",
            ClusterSingletonProxySettings.Create(system).WithRole(Role).WithSingletonName("coordinator")), ManagerName + "-proxy");
    }
}
