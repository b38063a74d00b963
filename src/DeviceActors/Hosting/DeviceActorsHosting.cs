using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Sharding;

namespace Orchestrator.DeviceActors.Hosting;

/// <summary>What the node tells <see cref="DeviceActorsHosting.AddDeviceActors"/>.</summary>
/// <param name="Persistence">Database of the journal, snapshots and read journal.</param>
/// <param name="HostsRegion">True on nodes with role <see cref="DeviceSharding.Role"/>: they host the region; other nodes get a proxy.</param>
/// <param name="Settings">Device actor tunables.</param>
/// <param name="ShardCount">Fixed shard count, identical on all nodes.</param>
/// <param name="Sightings">The node's sightings of devices answered without their actors (offline detection reads them).</param>
/// <param name="JournalMarks">Where the actors mark what they journal before replying (the idle fast path reads the marks).</param>
public sealed record DeviceActorsHostingOptions(DevicePersistenceOptions Persistence, bool HostsRegion, DeviceActorSettings Settings,
    int ShardCount = DeviceMessageExtractor.DefaultShardCount, IDeviceSightings? Sightings = null, IDeviceJournalMarks? JournalMarks = null);

/// <summary>The device actors' one Akka.Hosting extension: persistence and serializer, the device shard region (or proxy) and the silence watch.</summary>
public static class DeviceActorsHosting
{
    /// <summary>
    /// Registers <see cref="DevicePersistenceHosting.AddDevicePersistence"/> and the device region as
    /// <see cref="DeviceShardRegion"/>: on nodes hosting it the shard region (with the node's
    /// <see cref="DeviceSilenceWatch"/>, registered under its own type), elsewhere a proxy. Send any
    /// <see cref="Orchestrator.Messages.Devices.IDeviceCommand"/> to it; the reply comes from the device's actor.
    /// The actor system must use the cluster actor-ref provider.
    /// </summary>
    public static AkkaConfigurationBuilder AddDeviceActors(this AkkaConfigurationBuilder builder, DeviceActorsHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        builder.AddDevicePersistence(options.Persistence);
        var extractor = new DeviceMessageExtractor(options.ShardCount);
        if (!options.HostsRegion)
            return builder.WithShardRegionProxy<DeviceShardRegion>(DeviceSharding.TypeName, DeviceSharding.Role, extractor);
        var settings = options.Settings;
        // The watch needs the region and the region's actors need the watch; an actor started before the watch exists
        // merely stays live until its offline timeout.
        builder.WithShardRegion<DeviceShardRegion>(DeviceSharding.TypeName,
            (_, registry) => entityId => DeviceActor.Props(entityId, settings, registry.TryGet<DeviceSilenceWatch>(out var watch) ? watch : null, options.Sightings,
                options.JournalMarks),
            extractor,
            new ShardOptions
            {
                Role = DeviceSharding.Role,
                StateStoreMode = StateStoreMode.DData,
                RememberEntities = false,
                // DeviceActor passivates itself after its offline timeout (or when idle), so the shard must not stop it earlier.
                ShouldPassivateIdleEntities = false,
                HandOffStopMessage = StopDevice.Instance,
            });
        return builder.WithActors((system, registry) =>
            registry.Register<DeviceSilenceWatch>(
                system.ActorOf(DeviceSilenceWatch.Props(registry.Get<DeviceShardRegion>(), settings.OfflineAfter, options.Sightings), DeviceSharding.SilenceWatchName)));
    }
}
