using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Rollouts;

namespace Orchestrator.Node.Hosting;

/// <summary>Registry key (Akka.Hosting) of the device registry read model on gateway nodes.</summary>
public sealed class DeviceRegistryActor
{
    private DeviceRegistryActor() { }
}

/// <summary>Actor system of the node: remoting, cluster with this node's roles, the chunk-store and budget shard regions (or proxies), devices, channels, rollouts.</summary>
public static class AkkaBootstrap
{
    /// <summary>Prefix entities of the chunk store (two hex characters); the cache budget is split over them.</summary>
    public const int ChunkEntities = 256;

    private const string SerializationHocon = """
        akka.coordinated-shutdown.exit-clr = off
        # The proxy's identification-failure timer fires its first tick at once, before any Identify round trip, so
        # every start logged a false "failed to find an associated singleton" warning (akka.net issue 8568). A missing
        # rollout singleton is still visible: the rollout routes answer 503 rollouts_unavailable naming the role.
        akka.cluster.singleton-proxy.log-singleton-identification-failure = off
        """;

    /// <summary>
    /// Split-brain resolver: without a downing provider a crashed member stays unreachable forever and its shards
    /// never move. Strategy and stable-after come from <see cref="NodeOptions"/>.
    /// </summary>
    public static string SplitBrainHocon(NodeOptions node) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $$"""
        akka.cluster {
          downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
          split-brain-resolver {
            active-strategy = {{node.SplitBrainStrategy}}
            stable-after = {{(long)node.SplitBrainStableAfter.TotalMilliseconds}}ms
          }
        }
        """);

    /// <summary>Registers the actor system with the host; CoordinatedShutdown runs when the host stops.</summary>
    public static IServiceCollection AddNodeActorSystem(this IServiceCollection services, NodeSettings settings, IChunkBlobStore? chunkBackend,
        DevicePersistenceOptions devicePersistence)
    {
        var node = settings.Node;
        var channelCache = new ChannelCache();
        services.AddSingleton(channelCache);
        services.AddAkka(node.ActorSystemName, builder =>
        {
            // Akka's own log lines go through Microsoft.Extensions.Logging, so one configuration (Logging:LogLevel,
            // e.g. "Akka": "Warning") and one output format cover the node; Akka filters below Info before MEL sees them.
            builder.ConfigureLoggers(setup =>
            {
                setup.LogLevel = Akka.Event.LogLevel.InfoLevel;
                setup.ClearLoggers();
                setup.AddLoggerFactory();
            });
            builder.AddHocon(SerializationHocon, HoconAddMode.Prepend);
            // Device actors: our message serializer, the SQL journal/snapshot store and their sharding settings.
            builder.AddHocon(DeviceActorsConfig.Build(devicePersistence), HoconAddMode.Append);
            builder.AddHocon(SplitBrainHocon(node), HoconAddMode.Prepend);
            builder.WithRemoting(new RemoteOptions
            {
                HostName = string.IsNullOrWhiteSpace(node.BindHostname) ? node.Hostname : node.BindHostname,
                PublicHostName = node.Hostname,
                Port = node.Port,
                MaxFrameSize = 32 * 1024 * 1024,
            });
            builder.WithClustering(new ClusterOptions
            {
                Roles = [.. node.Roles],
                SeedNodes = [.. node.SeedNodes],
            });
            // Chunk store and download budgets: shard regions on 'chunks' nodes, proxies elsewhere.
            builder.WithChunkStore(new ChunkStoreHostingOptions(settings.HasRole(NodeRoles.Chunks), chunkBackend,
                settings.ChunkStore.CacheBytes / ChunkEntities, settings.Throttle.BudgetIdleTimeout, NodeRoles.Chunks));
            builder.AddStartup(async (system, registry) =>
            {
                var devices = settings.HasRole(NodeRoles.Devices)
                    ? await DeviceSharding.StartRegion(system, settings.Devices.ToSettings()).ConfigureAwait(false)
                    : await DeviceSharding.StartProxy(system).ConfigureAwait(false);
                registry.Register<DeviceShardRegion>(devices);
                // The admin API's device queries and the dashboard read the registry read model (gateway nodes serve them).
                var deviceRegistry = settings.HasRole(NodeRoles.Gateway) ? DeviceSharding.StartRegistry(system) : null;
                if (deviceRegistry is not null) registry.Register<DeviceRegistryActor>(deviceRegistry);
                // Channel directory singleton next to the rollouts that move channels; every node gets a proxy and a cache.
                var channels = ChannelHosting.Start(system, channelCache,
                    ChannelSettings.Default with { RefreshInterval = settings.Gateway.ChannelRefreshInterval }, settings.HasRole(NodeRoles.Rollouts));
                registry.Register<ChannelDirectoryProxy>(channels);
                // Rollout coordinator singleton on 'rollouts' nodes; every node gets a proxy for the admin API.
                registry.Register<RolloutCoordinatorProxy>(
                    RolloutHosting.Start(system, devices, RolloutSettings.Default with { RegistryQueryLimit = settings.Devices.RegistryQueryLimit },
                        settings.HasRole(NodeRoles.Rollouts),
                        // A coordinator on this node shares the gateway's registry (one row per device per node, not two).
                        registryProps: deviceRegistry is null ? null : DeviceRegistry.ForwardingTo(deviceRegistry), channels: channels));
            });
            if (node.SeedNodes.Count == 0)
            {
                // No seeds configured: this node is a cluster of its own (the single-node default).
                builder.AddStartup((system, _) =>
                {
                    var cluster = Cluster.Get(system);
                    cluster.Join(cluster.SelfAddress);
                });
            }
        });
        return services;
    }
}
