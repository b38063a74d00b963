using Akka.Actor;
using Akka.Cluster.Sharding;

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

    /// <summary>
    /// Ids of the device actors live anywhere in the cluster right now: the coordinator names every node hosting a device
    /// region, and each region lists its entities (started ones, recovering ones included). An actor not listed was
    /// started after this call, or is not running.
    /// </summary>
    /// <param name="system">The node's actor system.</param>
    /// <param name="region">The node's device region or proxy.</param>
    /// <param name="timeout">How long to wait for the coordinator and for each region.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="Akka.Actor.AskTimeoutException">A region or the coordinator did not answer in time.</exception>
    public static async Task<HashSet<string>> LiveDeviceIdsAsync(ActorSystem system, IActorRef region, TimeSpan timeout, CancellationToken ct)
    {
        var regions = await region.Ask<CurrentRegions>(GetCurrentRegions.Instance, timeout, ct).ConfigureAwait(false);
        var states = await Task.WhenAll(regions.Regions.Select(address =>
            system.ActorSelection(new RootActorPath(address) / "system" / "sharding" / TypeName)
                .Ask<CurrentShardRegionState>(GetShardRegionState.Instance, timeout, ct))).ConfigureAwait(false);
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var state in states)
            foreach (var shard in state.Shards)
                live.UnionWith(shard.EntityIds);
        return live;
    }
}
