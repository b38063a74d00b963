using Akka.Actor;
using Akka.Cluster.Sharding;

namespace Orchestrator.DeviceActors.Sharding;

/// <summary>
/// Entry point for the node: starts the device shard region on <c>devices</c> nodes and a proxy elsewhere
/// (<c>gateway</c>, <c>rollouts</c>). Send any <see cref="Orchestrator.Messages.Devices.IDeviceCommand"/> to the
/// returned ref; the reply comes from the device's actor. The actor system must be configured with
/// <see cref="DeviceActorsConfig.Build"/> and use the cluster actor-ref provider.
/// </summary>
public static class DeviceSharding
{
    /// <summary>Sharding type name (also the entity path segment).</summary>
    public const string TypeName = "device";

    /// <summary>Cluster role of the nodes hosting device actors.</summary>
    public const string Role = "devices";

    /// <summary>Name of the node's <see cref="DeviceSilenceWatch"/> (a top-level actor beside the region).</summary>
    public const string SilenceWatchName = "device-silence-watch";

    /// <summary>
    /// Starts the shard region hosting device actors and the node's <see cref="DeviceSilenceWatch"/>; call on nodes with
    /// role <see cref="Role"/>.
    /// </summary>
    /// <param name="system">The actor system.</param>
    /// <param name="settings">Device actor tunables; <see cref="DeviceActorSettings.Default"/> when null.</param>
    /// <param name="shardCount">Fixed shard count, identical on all nodes.</param>
    public static async Task<IActorRef> StartRegion(ActorSystem system, DeviceActorSettings? settings = null,
        int shardCount = DeviceMessageExtractor.DefaultShardCount)
    {
        var s = settings ?? DeviceActorSettings.Default;
        // The watch needs the region and the region's actors need the watch; an actor started before the watch exists
        // merely stays live until its offline timeout.
        IActorRef? watch = null;
        var region = await ClusterSharding.Get(system).StartAsync(
            TypeName,
            entityId => DeviceActor.Props(entityId, s, watch),
            ClusterShardingSettings.Create(system).WithRole(Role),
            new DeviceMessageExtractor(shardCount),
            ClusterSharding.Get(system).DefaultShardAllocationStrategy(ClusterShardingSettings.Create(system)),
            StopDevice.Instance).ConfigureAwait(false);
        watch = system.ActorOf(DeviceSilenceWatch.Props(region), SilenceWatchName);
        return region;
    }

    /// <summary>Starts the device registry read model (<see cref="Registry.DeviceRegistry"/>) as a top-level actor.</summary>
    /// <param name="system">An actor system configured with <see cref="DeviceActorsConfig.Build"/>.</param>
    /// <param name="name">Actor name.</param>
    public static IActorRef StartRegistry(ActorSystem system, string name = "device-registry") =>
        system.ActorOf(Registry.DeviceRegistry.Props(), name);

    /// <summary>Starts a proxy that forwards to the region on <see cref="Role"/> nodes; call on nodes without that role.</summary>
    /// <param name="system">The actor system.</param>
    /// <param name="shardCount">The same shard count as the region.</param>
    public static Task<IActorRef> StartProxy(ActorSystem system, int shardCount = DeviceMessageExtractor.DefaultShardCount) =>
        ClusterSharding.Get(system).StartProxyAsync(TypeName, Role, new DeviceMessageExtractor(shardCount));
}
