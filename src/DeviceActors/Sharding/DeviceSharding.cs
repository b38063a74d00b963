using Akka.Actor;

namespace Orchestrator.DeviceActors.Sharding;

/// <summary>Registry key (Akka.Hosting) of the device shard region or its proxy.</summary>
public sealed class DeviceShardRegion
{
    private DeviceShardRegion() { }
}

/// <summary>
/// Names of the device region (started by <see cref="Hosting.DeviceActorsHosting.AddDeviceActors"/>) and the start of
/// the device registry read model.
/// </summary>
public static class DeviceSharding
{
    /// <summary>Sharding type name (also the entity path segment).</summary>
    public const string TypeName = "device";

    /// <summary>Cluster role of the nodes hosting device actors.</summary>
    public const string Role = "devices";

    /// <summary>Name of the node's <see cref="DeviceSilenceWatch"/> (a top-level actor beside the region).</summary>
    public const string SilenceWatchName = "device-silence-watch";

    /// <summary>Starts the device registry read model (<see cref="Registry.DeviceRegistry"/>) as a top-level actor.</summary>
    /// <param name="system">An actor system with <see cref="Hosting.DevicePersistenceHosting.AddDevicePersistence"/>.</param>
    /// <param name="name">Actor name.</param>
    /// <param name="table">The rows, shared with the node's gateway (idle fast path); a private table when null.</param>
    public static IActorRef StartRegistry(ActorSystem system, string name = "device-registry", Registry.DeviceRowTable? table = null) =>
        system.ActorOf(Registry.DeviceRegistry.Props(table), name);
}
