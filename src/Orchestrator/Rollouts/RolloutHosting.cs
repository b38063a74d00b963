using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Orchestrator.DeviceActors.Registry;

namespace Orchestrator.Node.Rollouts;

/// <summary>Registry key (Akka.Hosting) of the proxy to the rollout coordinator singleton.</summary>
public sealed class RolloutCoordinatorProxy
{
    private RolloutCoordinatorProxy() { }
}

/// <summary>Starts the <see cref="RolloutCoordinator"/> cluster singleton (on nodes with role <c>rollouts</c>) and its proxy (on every node).</summary>
public static class RolloutHosting
{
    /// <summary>Cluster role hosting the singleton.</summary>
    public const string Role = "rollouts";

    /// <summary>Name of the singleton manager actor.</summary>
    public const string ManagerName = "rollout-coordinator";

    /// <summary>
    /// Starts the singleton manager when this node has <paramref name="hostsSingleton"/>, and returns a proxy that
    /// routes to wherever the singleton runs (buffering while it moves).
    /// </summary>
    /// <param name="system">Actor system (cluster provider, persistence configured).</param>
    /// <param name="devices">Device shard region or proxy.</param>
    /// <param name="settings">Rollout tunables.</param>
    /// <param name="hostsSingleton">True on nodes with role <see cref="Role"/>.</param>
    /// <param name="registryProps">Device registry props (default: the real read model).</param>
    /// <param name="channels">Channel directory (proxy) that rollouts report their status to; null: no channel moves (tests).</param>
    public static IActorRef Start(ActorSystem system, IActorRef devices, RolloutSettings settings, bool hostsSingleton, Props? registryProps = null,
        IActorRef? channels = null)
    {
        if (hostsSingleton)
        {
            system.ActorOf(ClusterSingletonManager.Props(
                RolloutCoordinator.Props(devices, registryProps ?? DeviceRegistry.Props(), settings, channels),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(Role).WithSingletonName("coordinator")), ManagerName);
        }
        return system.ActorOf(ClusterSingletonProxy.Props($"/user/{ManagerName}",
            ClusterSingletonProxySettings.Create(system).WithRole(Role).WithSingletonName("coordinator")), ManagerName + "-proxy");
    }
}
