using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.DeviceActors.Hosting;
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

    // Akka.Hosting has no option for these two.
    private const string NodeHocon = """
        akka.coordinated-shutdown.exit-clr = off
        # The proxy's identification-failure timer fires its first tick at once, before any Identify round trip, so
        # every start logged a false "failed to find an associated singleton" warning (akka.net issue 8568). A missing
        # rollout singleton is still visible: the rollout routes answer 503 rollouts_unavailable naming the role.
        akka.cluster.singleton-proxy.log-singleton-identification-failure = off
        """;

    /// <summary>
    /// Split-brain resolver: without a downing provider a crashed member stays unreachable forever and its shards
    /// never move. Strategy, stable-after and the removal margin come from <see cref="NodeOptions"/>, and so does how long
    /// a join may stay unanswered (<see cref="NodeOptions.JoinTimeout"/>). HOCON because
    /// Akka.Cluster.Hosting has no option for stable-after, the margin, the leader's tick or the sharding retry interval
    /// (numbers and a validated strategy name: nothing to escape). The sharding retry interval is how soon a region asks
    /// again where a shard lives when the coordinator ignored it while a downed region's shards were being released.
    /// </summary>
    public static string SplitBrainHocon(NodeOptions node) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $$"""
        akka.cluster {
          downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
          split-brain-resolver {
            active-strategy = {{node.SplitBrainStrategy}}
            stable-after = {{(long)node.SplitBrainStableAfter.TotalMilliseconds}}ms
          }
          down-removal-margin = {{(node.DownRemovalMargin == TimeSpan.Zero ? "off" : $"{(long)node.DownRemovalMargin.TotalMilliseconds}ms")}}
          shutdown-after-unsuccessful-join-seed-nodes = {{(node.JoinTimeout == TimeSpan.Zero ? "off" : $"{(long)node.JoinTimeout.TotalMilliseconds}ms")}}
          sharding.retry-interval = {{ShardingRetryInterval}}
          leader-actions-interval = {{LeaderActionsInterval}}
        }
        """);

    /// <summary>
    /// How often the leader moves members between states (Akka's default: 1 s); a downed member's shards move only once
    /// the leader has removed it, so on average half of this is added to every failover.
    /// </summary>
    public const string LeaderActionsInterval = "250ms";

    /// <summary>How soon a shard region asks again for a shard's home it did not get (Akka's default: 2 s).</summary>
    public const string ShardingRetryInterval = "500ms";

    /// <summary>Registers the actor system with the host; CoordinatedShutdown runs when the host stops.</summary>
    public static IServiceCollection AddNodeActorSystem(this IServiceCollection services, NodeSettings settings, IChunkBlobStore? chunkBackend,
        DevicePersistenceOptions devicePersistence)
    {
        var node = settings.Node;
        var channelCache = new ChannelCache();
        services.AddSingleton(channelCache);
        // The registry's rows, read by this node's gateway for the idle fast path (empty on nodes without a registry).
        var deviceRows = new DeviceRowTable();
        services.AddSingleton(deviceRows);
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
            builder.AddHocon(NodeHocon, HoconAddMode.Prepend);
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
                FailureDetector = new PhiAccrualFailureDetectorOptions
                {
                    HeartbeatInterval = node.FailureDetectorHeartbeatInterval,
                    AcceptableHeartbeatPause = node.FailureDetectorAcceptablePause,
                },
            });
            // Chunk store and download budgets: shard regions on 'chunks' nodes, proxies elsewhere.
            builder.WithChunkStore(new ChunkStoreHostingOptions(settings.HasRole(NodeRoles.Chunks), chunkBackend,
                settings.ChunkStore.CacheBytes / ChunkEntities, settings.Throttle.BudgetIdleTimeout, NodeRoles.Chunks));
            // Devices: serializer, journal and snapshots, and the shard region on 'devices' nodes (a proxy elsewhere).
            // The rows double as the node's sightings: offline detection here counts check-ins any gateway answered without actors.
            // They are also where the actors mark what they journal before replying, carried to every node's fast path.
            builder.AddDeviceActors(new DeviceActorsHostingOptions(devicePersistence, settings.HasRole(NodeRoles.Devices), settings.Devices.ToSettings(),
                Sightings: deviceRows, JournalMarks: deviceRows));
            builder.WithActors((system, _) => system.ActorOf(SightingsCarry.Props(deviceRows, settings.Devices.OfflineAfter), "device-sightings"));
            builder.WithActors((system, _) => system.ActorOf(JournalMarksCarry.Props(deviceRows), "device-journal-marks"));
            // The admin API's device queries and the dashboard read the registry read model (gateway nodes serve them).
            if (settings.HasRole(NodeRoles.Gateway))
                builder.WithActors((system, registry) => registry.Register<DeviceRegistryActor>(DeviceSharding.StartRegistry(system, table: deviceRows)));
            // Channel directory and rollout coordinator singletons on 'rollouts' nodes; every node gets proxies and a channel cache.
            builder.AddRollouts(new RolloutHostingOptions(settings.HasRole(NodeRoles.Rollouts),
                RolloutSettings.Default with { RegistryQueryLimit = settings.Devices.RegistryQueryLimit },
                channelCache, ChannelSettings.Default with { RefreshInterval = settings.Gateway.ChannelRefreshInterval }));
            // Seeds, bootstrap through discovery, or a cluster of its own.
            builder.AddClusterFormation(node);
        });
        return services;
    }
}
