using Orchestrator.ChunkStore.Throttling;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// Everything the node reads from configuration (appsettings.json, then environment variables prefixed
/// <c>ORCH_</c> with <c>__</c> as section separator, e.g. <c>ORCH_Node__DataDirectory=/var/lib/orch</c>, then
/// command-line arguments). Validated at start; every problem names the setting and the fix.
/// </summary>
public sealed class NodeOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Node";

    /// <summary>Folder for the node's own state: SQLite database, admin token file. Created when missing.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Root of the static store (chunks/, manifests/, channels/). Relative paths are under the working directory.</summary>
    public string StoreRoot { get; set; } = "data/store";

    /// <summary>Cluster roles of this node: any of gateway, devices, chunks, rollouts.</summary>
    public List<string> Roles { get; set; } = [.. NodeRoles.All];

    /// <summary>Name of the actor system (all nodes of one cluster must agree).</summary>
    public string ActorSystemName { get; set; } = "orchestrator";

    /// <summary>Host name other cluster nodes use to reach this one (part of this node's Akka address).</summary>
    public string Hostname { get; set; } = "127.0.0.1";

    /// <summary>
    /// Interface the Akka remoting socket binds to, e.g. <c>0.0.0.0</c> in a container whose DNS name
    /// (<see cref="Hostname"/>) is not a local interface. Empty: bind to <see cref="Hostname"/>.
    /// </summary>
    public string? BindHostname { get; set; }

    /// <summary>Akka remoting port; 0 picks a free one (fine for a single node).</summary>
    public int Port { get; set; } = 4053;

    /// <summary>
    /// Seed node addresses (akka.tcp://orchestrator@host:port). Empty and no <see cref="Discovery"/>: the node forms a
    /// cluster by itself.
    /// </summary>
    public List<string> SeedNodes { get; set; } = [];

    /// <summary>
    /// How the node finds the other nodes for Akka Cluster Bootstrap: empty (none: <see cref="SeedNodes"/>, or a cluster
    /// of its own), <c>config</c> (the list <see cref="DiscoveryEndpoints"/>) or <c>kubernetes-api</c> (pods labelled
    /// <c>app.kubernetes.io/name=</c><see cref="DiscoveryServiceName"/> with a container port named <see cref="KubernetesPortName"/>).
    /// </summary>
    public string Discovery { get; set; } = "";

    /// <summary>Service name the nodes of one cluster share in discovery (Kubernetes: the pods' <c>app.kubernetes.io/name</c> label).</summary>
    public string DiscoveryServiceName { get; set; } = "orchestrator";

    /// <summary>With <c>Discovery = config</c>: every node's HTTP contact point, <c>host:port</c> (its own included).</summary>
    public List<string> DiscoveryEndpoints { get; set; } = [];

    /// <summary>
    /// Contact points that must be found (and answer) before the node with the lowest address forms a new cluster; set
    /// it to the initial node count so that a partial start cannot form two clusters.
    /// </summary>
    public int DiscoveryContactPoints { get; set; } = 2;

    /// <summary>With <c>Discovery = kubernetes-api</c>: the name of the container port that serves the node's HTTP.</summary>
    public string KubernetesPortName { get; set; } = "http";

    /// <summary>
    /// Host at which the other nodes reach this node's HTTP contact point, exactly as discovery lists it (Kubernetes:
    /// the pod IP). Empty: <see cref="Hostname"/>.
    /// </summary>
    public string? ContactPointHost { get; set; }

    /// <summary>Discovery methods the node accepts (empty: none).</summary>
    public static readonly IReadOnlyList<string> DiscoveryMethods = ["", "config", "kubernetes-api"];

    /// <summary>
    /// Split-brain resolver strategy that downs unreachable members (a crashed pod) so their shards move:
    /// <c>keep-majority</c> (default), <c>keep-oldest</c> or <c>down-all</c>.
    /// </summary>
    public string SplitBrainStrategy { get; set; } = "keep-majority";

    /// <summary>
    /// How long the set of unreachable members must stay unchanged before the resolver downs them. Together with
    /// <see cref="FailureDetectorAcceptablePause"/> and <see cref="DownRemovalMargin"/> it bounds how long a crashed
    /// node's devices go unanswered (docs/scaling.md, "Failover").
    /// </summary>
    public TimeSpan SplitBrainStableAfter { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often cluster members send each other heartbeats.</summary>
    public TimeSpan FailureDetectorHeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Heartbeat silence the failure detector tolerates before it marks a member unreachable (GC pauses, CPU
    /// starvation, network hiccups); longer means fewer false alarms and a slower failover.
    /// </summary>
    public TimeSpan FailureDetectorAcceptablePause { get; set; } = TimeSpan.FromMilliseconds(1500);

    /// <summary>
    /// Wait after a downed member is removed before its shards and singletons start elsewhere: time for the members
    /// on the other side of a network partition, which down themselves after the same <see cref="SplitBrainStableAfter"/>,
    /// to stop their device actors, so no device has two live actors writing one journal. Zero means Akka's default
    /// (as long as <see cref="SplitBrainStableAfter"/>).
    /// </summary>
    public TimeSpan DownRemovalMargin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a node may try to join its cluster (seed nodes, or the seeds Cluster Bootstrap found) before it stops, so
    /// that its supervisor (Kubernetes, systemd) starts it again as a new incarnation: a node whose join is never
    /// answered (survivors whose transport lost its association, seeds that are gone) would otherwise wait forever, not
    /// ready and never restarted. Zero: wait forever.
    /// </summary>
    public TimeSpan JoinTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Split-brain strategies the node accepts.</summary>
    public static readonly IReadOnlyList<string> SplitBrainStrategies = ["keep-majority", "keep-oldest", "down-all"];

    /// <summary>Problems with the values; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory)) yield return "Node:DataDirectory is empty; set it to a writable folder, e.g. ./data.";
        if (string.IsNullOrWhiteSpace(StoreRoot)) yield return "Node:StoreRoot is empty; set it to the store folder, e.g. ./data/store.";
        if (Roles.Count == 0) yield return $"Node:Roles is empty; give at least one of {string.Join(", ", NodeRoles.All)}.";
        foreach (var r in Roles.Where(r => !NodeRoles.All.Contains(r)))
            yield return $"Node:Roles contains unknown role '{r}'; allowed: {string.Join(", ", NodeRoles.All)}.";
        if (Port is < 0 or > 65535) yield return $"Node:Port {Port} is out of range; use 0..65535.";
        if (string.IsNullOrWhiteSpace(Hostname)) yield return "Node:Hostname is empty; set the address other nodes reach this one at.";
        foreach (var s in SeedNodes.Where(s => !s.StartsWith("akka.tcp://", StringComparison.Ordinal)))
            yield return $"Node:SeedNodes entry '{s}' is not an Akka address; write akka.tcp://{ActorSystemName}@host:port.";
        foreach (var s in SeedNodes.Where(s => s.StartsWith("akka.tcp://", StringComparison.Ordinal)
                     && !s.StartsWith($"akka.tcp://{ActorSystemName}@", StringComparison.Ordinal)))
            yield return $"Node:SeedNodes entry '{s}' names another actor system; this node's is '{ActorSystemName}' (Node:ActorSystemName), so write akka.tcp://{ActorSystemName}@host:port.";
        if (!DiscoveryMethods.Contains(Discovery))
            yield return $"Node:Discovery '{Discovery}' is unknown; use config or kubernetes-api, or leave it empty for Node:SeedNodes.";
        else if (Discovery.Length > 0)
        {
            if (SeedNodes.Count > 0)
                yield return $"Node:SeedNodes and Node:Discovery '{Discovery}' are both set; Cluster Bootstrap forms the cluster only without seeds, so remove Node:SeedNodes.";
            if (string.IsNullOrWhiteSpace(DiscoveryServiceName))
                yield return "Node:DiscoveryServiceName is empty; name the service all nodes of the cluster share, e.g. orchestrator.";
            if (DiscoveryContactPoints < 1)
                yield return $"Node:DiscoveryContactPoints {DiscoveryContactPoints} is too small; use the initial node count (at least 1).";
            if (Discovery == "config" && DiscoveryEndpoints.Count == 0)
                yield return "Node:Discovery is config but Node:DiscoveryEndpoints is empty; list every node's HTTP host:port, e.g. 10.0.0.1:8080.";
            foreach (var e in DiscoveryEndpoints.Where(e => !IsHostPort(e)))
                yield return $"Node:DiscoveryEndpoints entry '{e}' is not host:port; write e.g. 10.0.0.1:8080.";
        }
        if (!SplitBrainStrategies.Contains(SplitBrainStrategy))
            yield return $"Node:SplitBrainStrategy '{SplitBrainStrategy}' is unknown; use one of {string.Join(", ", SplitBrainStrategies)}.";
        if (SplitBrainStableAfter < TimeSpan.FromSeconds(1))
            yield return $"Node:SplitBrainStableAfter {SplitBrainStableAfter} is too short; use at least 00:00:01 (default 00:00:02).";
        if (FailureDetectorHeartbeatInterval < TimeSpan.FromMilliseconds(100) || FailureDetectorHeartbeatInterval > TimeSpan.FromSeconds(30))
            yield return $"Node:FailureDetectorHeartbeatInterval {FailureDetectorHeartbeatInterval} is out of range; use 00:00:00.100 to 00:00:30 (default 00:00:00.500).";
        if (FailureDetectorAcceptablePause < FailureDetectorHeartbeatInterval)
            yield return $"Node:FailureDetectorAcceptablePause {FailureDetectorAcceptablePause} is shorter than Node:FailureDetectorHeartbeatInterval " +
                $"({FailureDetectorHeartbeatInterval}): every late heartbeat would mark a member unreachable; use at least the interval (default 00:00:01.500).";
        if (JoinTimeout != TimeSpan.Zero && (JoinTimeout < TimeSpan.FromSeconds(5) || JoinTimeout > TimeSpan.FromHours(1)))
            yield return $"Node:JoinTimeout {JoinTimeout} is out of range; use 00:00:05 to 01:00:00, or 00:00:00 to wait forever (default 00:02:00).";
        if (DownRemovalMargin < TimeSpan.Zero || DownRemovalMargin > TimeSpan.FromMinutes(5))
            yield return $"Node:DownRemovalMargin {DownRemovalMargin} is out of range; use 00:00:00 (Akka's default: Node:SplitBrainStableAfter) to 00:05:00 (default 00:00:01).";
    }

    /// <summary>True for <c>host:port</c> with a port in 1..65535.</summary>
    internal static bool IsHostPort(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        return colon > 0 && int.TryParse(endpoint.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
               && port is > 0 and <= 65535;
    }
}

/// <summary>Cluster role names.</summary>
public static class NodeRoles
{
    /// <summary>Serves the device HTTP API and the admin API.</summary>
    public const string Gateway = "gateway";
    /// <summary>Hosts the sharded device actors.</summary>
    public const string Devices = "devices";
    /// <summary>Hosts the sharded chunk-store actors.</summary>
    public const string Chunks = "chunks";
    /// <summary>Hosts the rollout actors.</summary>
    public const string Rollouts = "rollouts";
    /// <summary>Every role.</summary>
    public static readonly IReadOnlyList<string> All = [Gateway, Devices, Chunks, Rollouts];
}

/// <summary>Where the node keeps its relational state (device credentials; device-actor persistence).</summary>
public sealed class DatabaseOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Database";

    /// <summary><c>sqlite</c> (default, file in the data directory) or <c>postgresql</c>.</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>Connection string; for SQLite empty means <c>Data Source=&lt;DataDirectory&gt;/orchestrator.db</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Problems with the values; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (Provider is not ("sqlite" or "postgresql"))
            yield return $"Database:Provider '{Provider}' is unknown; use sqlite or postgresql.";
        if (Provider == "postgresql" && string.IsNullOrWhiteSpace(ConnectionString))
            yield return "Database:ConnectionString is required for postgresql, e.g. Host=db;Username=orch;Password=...;Database=orchestrator.";
    }
}

/// <summary>Chunk-store settings of nodes with the <c>chunks</c> role.</summary>
public sealed class ChunkStoreOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "ChunkStore";

    /// <summary><c>filesystem</c> (chunks under Node:StoreRoot, default) or <c>postgresql</c>.</summary>
    public string Backend { get; set; } = "filesystem";

    /// <summary>Connection string of the PostgreSQL backend (defaults to Database:ConnectionString).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Bytes of hot chunks kept in memory per node (split evenly over the 256 prefix entities).</summary>
    public long CacheBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>How long the gateway waits for a chunk shard before answering 503.</summary>
    public TimeSpan AskTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Problems with the values; empty when valid.</summary>
    public IEnumerable<string> Validate(DatabaseOptions db)
    {
        if (Backend is not ("filesystem" or "postgresql"))
            yield return $"ChunkStore:Backend '{Backend}' is unknown; use filesystem or postgresql.";
        if (Backend == "postgresql" && string.IsNullOrWhiteSpace(ConnectionString ?? (db.Provider == "postgresql" ? db.ConnectionString : null)))
            yield return "ChunkStore:Backend is postgresql but no connection string is set; set ChunkStore:ConnectionString (or use Database:Provider=postgresql).";
        if (CacheBytes < 0) yield return "ChunkStore:CacheBytes must be >= 0.";
        if (AskTimeout <= TimeSpan.Zero) yield return "ChunkStore:AskTimeout must be positive, e.g. 00:00:10.";
    }
}

/// <summary>Limits on what devices may send.</summary>
public sealed class GatewayOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Gateway";

    /// <summary>Largest request body accepted (bytes); larger requests get 413 and change nothing.</summary>
    public long MaxRequestBodyBytes { get; set; } = 4L * 1024 * 1024;

    /// <summary>Largest number of per-file entries in one check-in.</summary>
    public int MaxInventoryFiles { get; set; } = 100_000;

    /// <summary>
    /// Seconds until a running agent should check in again (CheckInResponse.NextCheckInSeconds). Default 300: a third
    /// of the default <see cref="DeviceOptions.OfflineAfter"/> (15 min), so a device on schedule is never marked Offline.
    /// </summary>
    public int NextCheckInSeconds { get; set; } = 300;

    /// <summary>How long the gateway waits for a device actor before answering 503.</summary>
    public TimeSpan DeviceAskTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Plain HTTP mirrors of the store, offered to agents after the gateway.</summary>
    public List<string> Mirrors { get; set; } = [];

    /// <summary>
    /// Largest difference (seconds) between a device request's signed timestamp and the gateway's clock; outside it the
    /// request is refused with 401 <c>timestamp_skew</c>. It bounds how long a captured request stays usable at all.
    /// </summary>
    public int DeviceClockSkewSeconds { get; set; } = 300;

    /// <summary>Site policy sent at check-in: agents try <see cref="Mirrors"/> (theirs and these) before the gateway.</summary>
    public bool MirrorsFirst { get; set; }

    /// <summary>How often the fleet and rollout gauges on <c>/metrics</c> are refreshed, in seconds (default 15).</summary>
    public int FleetGaugeRefreshSeconds { get; set; } = 15;

    /// <summary>
    /// How often each node's channel cache re-reads the whole channel directory (default 10 s). Changes reach the caches
    /// at once by distributed pub-sub, which is best effort: this interval bounds how long a node may decide check-ins
    /// against a stale channel release when a publish was lost.
    /// </summary>
    public TimeSpan ChannelRefreshInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The idle fast path (default on; its guarantees and limits: docs/configuration.md): the gateway answers a check-in
    /// "nothing to do" itself, without the device's actor, when the node's registry row proves the actor would answer
    /// exactly that and journal nothing (<see cref="Orchestrator.DeviceActors.State.IdleCheckIn"/>), once the registry
    /// has caught up with the journal and the row has folded every event the device's actor marked as journaled (an
    /// order acknowledged by the actor is never answered from an older row); its answers count as the device's contact
    /// for offline detection (sightings, carried between nodes). Any other check-in goes to the actor. Off: every
    /// check-in goes to the actor.
    /// </summary>
    public bool AnswerIdleWithoutActor { get; set; } = true;

    /// <summary>
    /// The fast path hands a device's check-in to its actor, which journals the device's last-seen, once the journaled
    /// last-seen is this old (default 1 h; never shorter than <c>Devices:LastSeenPersistInterval</c>): how stale the
    /// journal's last-seen of a device answered only by the fast path may get, and so what a restarted node shows
    /// until the device's next check-in. Longer: fewer actor recoveries and journal writes per idle device.
    /// </summary>
    public TimeSpan IdleLastSeenPersistInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Problems with the values; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxRequestBodyBytes < 1024) yield return "Gateway:MaxRequestBodyBytes must be at least 1024.";
        if (MaxInventoryFiles < 1) yield return "Gateway:MaxInventoryFiles must be at least 1.";
        if (NextCheckInSeconds < 1) yield return "Gateway:NextCheckInSeconds must be at least 1.";
        if (IdleLastSeenPersistInterval <= TimeSpan.Zero || IdleLastSeenPersistInterval > TimeSpan.FromDays(7))
            yield return $"Gateway:IdleLastSeenPersistInterval ({IdleLastSeenPersistInterval}) must be between 00:00:01 and 7.00:00:00, e.g. 01:00:00 " +
                "(how old a fast-path device's journaled last-seen may get before its actor journals it again).";
        if (ChannelRefreshInterval < TimeSpan.FromSeconds(1) || ChannelRefreshInterval > TimeSpan.FromHours(1))
            yield return $"Gateway:ChannelRefreshInterval ({ChannelRefreshInterval}) must be between 00:00:01 and 01:00:00, e.g. 00:00:10 " +
                "(how stale a node's channel view may get when a pub-sub update is lost).";
        if (FleetGaugeRefreshSeconds < 1) yield return "Gateway:FleetGaugeRefreshSeconds must be at least 1 (seconds between refreshes of the fleet gauges on /metrics).";
        if (DeviceAskTimeout <= TimeSpan.Zero) yield return "Gateway:DeviceAskTimeout must be positive, e.g. 00:00:10.";
        if (DeviceClockSkewSeconds is < 1 or > 86_400)
            yield return $"Gateway:DeviceClockSkewSeconds {DeviceClockSkewSeconds} is out of range; use 1..86400 seconds (default 300).";
        foreach (var m in Mirrors.Where(m => !Uri.TryCreate(m, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https")))
            yield return $"Gateway:Mirrors entry '{m}' is not an absolute http(s) URL.";
    }
}

/// <summary>Admin API access.</summary>
public sealed class AdminOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Admin";

    /// <summary>
    /// Tokens accepted by the admin API. Each holds the SHA-256 (hex) of the token, never the token itself.
    /// When empty, the node creates a bootstrap token with all scopes in <see cref="BootstrapTokenFile"/>.
    /// </summary>
    public List<AdminTokenOptions> Tokens { get; set; } = [];

    /// <summary>File (relative to Node:DataDirectory) holding the bootstrap token; created with mode 0600.</summary>
    public string BootstrapTokenFile { get; set; } = "admin-token";
}

/// <summary>One admin token entry.</summary>
public sealed class AdminTokenOptions
{
    /// <summary>Who holds the token (for logs).</summary>
    public string Name { get; set; } = "";

    /// <summary>SHA-256 of the token, 64 hex characters (<c>printf %s "$TOKEN" | sha256sum</c>).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>Scopes: <c>read</c> and/or <c>operate</c>.</summary>
    public List<string> Scopes { get; set; } = [];
}

/// <summary>Section <c>Devices</c>: tunables of the device actors this node hosts (see <see cref="DeviceActorSettings"/>).</summary>
public sealed class DeviceOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Devices";

    /// <summary>Silence after which a device is marked Offline (default 15 min); longer than the agents' check-in interval.</summary>
    public TimeSpan OfflineAfter { get; set; } = DeviceActorSettings.Default.OfflineAfter;

    /// <summary>
    /// Idle check-ins (nothing but LastSeen changes) are journaled at most this often (default 5 min; 0 = every one):
    /// how stale the registry's "last seen" may be. Must be shorter than <see cref="OfflineAfter"/>.
    /// </summary>
    public TimeSpan LastSeenPersistInterval { get; set; } = DeviceActorSettings.Default.LastSeenPersistInterval;

    /// <summary>
    /// Most devices a whole-fleet selection (rollout creation and late joiners, fleet view, devices running a release)
    /// reads from the registry; more matching devices is an error naming this setting, never a truncated selection.
    /// </summary>
    public int RegistryQueryLimit { get; set; } = RegistrySelection.DefaultLimit;

    /// <summary>
    /// How often the journal's followers (the device registry, rollouts following their devices) poll for new events
    /// (default 0.5 s): how far the registry's views lag the journal. The idle fast path does not depend on it (a row
    /// below its device's journal mark declines), only how soon after an order it answers the device again.
    /// </summary>
    public TimeSpan QueryRefreshInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// A device with nothing in flight (status Unknown, Idle or Completed) has its actor passivated this long after its
    /// last message, after a snapshot that makes its next recovery one read (default 30 s); 0 keeps actors live until
    /// <see cref="OfflineAfter"/>. Shorter than the agents' check-in interval, idle devices hold no actor between
    /// check-ins (less memory) and each check-in recovers one from its snapshot (more database reads).
    /// </summary>
    public TimeSpan IdlePassivateAfter { get; set; } = DeviceActorSettings.Default.IdlePassivateAfter;

    /// <summary>
    /// An actor woken for a device that never sent a request (registered or queried, never checked in) passivates this
    /// long after its last message, without a snapshot (default 30 s); 0 keeps it live until <see cref="OfflineAfter"/>.
    /// Registering a fleet in bulk otherwise holds one live actor per registered device until the offline timeout.
    /// </summary>
    public TimeSpan UnheardPassivateAfter { get; set; } = DeviceActorSettings.Default.UnheardPassivateAfter;

    /// <summary>First retry delay a device is told after a failed attempt (before jitter; default 2 s).</summary>
    public TimeSpan RetryBase { get; set; } = DeviceActorSettings.Default.RetryBase;

    /// <summary>Largest retry delay a device is told (before jitter; default 5 min); check-ins before it are answered 429 retry_later.</summary>
    public TimeSpan RetryCap { get; set; } = DeviceActorSettings.Default.RetryCap;

    /// <summary>The actor settings these options give (the rest from <see cref="DeviceActorSettings.Default"/>).</summary>
    public DeviceActorSettings ToSettings()
    {
        var d = DeviceActorSettings.Default;
        return new DeviceActorSettings(OfflineAfter, d.SnapshotEvery, RetryBase, RetryCap, LastSeenPersistInterval, IdlePassivateAfter, UnheardPassivateAfter);
    }

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (RegistryQueryLimit is < 1 or > QueryDevices.MaxLimit)
            yield return $"Devices:RegistryQueryLimit {RegistryQueryLimit} is out of range; use 1..{QueryDevices.MaxLimit} (default {RegistrySelection.DefaultLimit}).";
        if (QueryRefreshInterval < TimeSpan.FromMilliseconds(10) || QueryRefreshInterval > TimeSpan.FromMinutes(1))
            yield return $"Devices:QueryRefreshInterval {QueryRefreshInterval} must be between 00:00:00.010 and 00:01:00, e.g. 00:00:00.500.";
        if (OfflineAfter <= TimeSpan.Zero) yield return "Devices:OfflineAfter must be positive, e.g. 00:15:00 (longer than the agents' check-in interval).";
        if (RetryBase <= TimeSpan.Zero || RetryCap < RetryBase)
            yield return $"Devices:RetryBase ({RetryBase}) must be positive and Devices:RetryCap ({RetryCap}) at least as long, e.g. 00:00:02 and 00:05:00.";
        if (LastSeenPersistInterval < TimeSpan.Zero || LastSeenPersistInterval >= OfflineAfter)
            yield return $"Devices:LastSeenPersistInterval {LastSeenPersistInterval} must be 0 or more and shorter than Devices:OfflineAfter ({OfflineAfter}), e.g. 00:05:00.";
        if (IdlePassivateAfter < TimeSpan.Zero || IdlePassivateAfter >= OfflineAfter)
            yield return $"Devices:IdlePassivateAfter {IdlePassivateAfter} must be 0 (off) or more and shorter than Devices:OfflineAfter ({OfflineAfter}), e.g. 00:00:30.";
        if (UnheardPassivateAfter < TimeSpan.Zero || UnheardPassivateAfter >= OfflineAfter)
            yield return $"Devices:UnheardPassivateAfter {UnheardPassivateAfter} must be 0 (off) or more and shorter than Devices:OfflineAfter ({OfflineAfter}), e.g. 00:00:30.";
    }
}

/// <summary>Binds and validates all option sections; a failure lists every problem at once.</summary>
public sealed record NodeSettings(
    NodeOptions Node,
    DatabaseOptions Database,
    ChunkStoreOptions ChunkStore,
    GatewayOptions Gateway,
    AdminOptions Admin,
    DownloadThrottleOptions Throttle,
    DeviceOptions Devices)
{
    /// <summary>Reads every section from <paramref name="config"/> and throws <see cref="InvalidOperationException"/> listing all problems.</summary>
    public static NodeSettings Load(IConfiguration config)
    {
        NodeSettings s;
        try
        {
            s = new NodeSettings(
                config.GetSection(NodeOptions.Section).Get<NodeOptions>() ?? new(),
                config.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new(),
                config.GetSection(ChunkStoreOptions.Section).Get<ChunkStoreOptions>() ?? new(),
                config.GetSection(GatewayOptions.Section).Get<GatewayOptions>() ?? new(),
                config.GetSection(AdminOptions.Section).Get<AdminOptions>() ?? new(),
                config.GetSection("Throttle").Get<DownloadThrottleOptions>() ?? new(),
                config.GetSection(DeviceOptions.Section).Get<DeviceOptions>() ?? new());
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException($"Configuration cannot be read: {ex.Message}", ex);
        }
        // A list bound from configuration appends to the default instead of replacing it.
        var roles = config.GetSection($"{NodeOptions.Section}:Roles").Get<List<string>>();
        if (roles is not null) s.Node.Roles = roles;
        var problems = s.Node.Validate()
            .Concat(s.Database.Validate())
            .Concat(s.ChunkStore.Validate(s.Database))
            .Concat(s.Gateway.Validate())
            .Concat(s.Throttle.Validate())
            .Concat(s.Devices.Validate())
            .Concat(ValidateCheckInVsOffline(s.Gateway, s.Devices))
            .Concat(s.Admin.Tokens.SelectMany(ValidateToken))
            .ToList();
        ThrowIfInvalid(problems);
        return s;
    }

    /// <summary>First line of every configuration refusal (the start-up failure report recognises it).</summary>
    public const string InvalidConfigurationHeading = "Invalid configuration:";

    /// <summary>Throws <see cref="InvalidOperationException"/> listing <paramref name="problems"/>, one per line, when there are any.</summary>
    public static void ThrowIfInvalid(IEnumerable<string> problems)
    {
        var list = problems.ToList();
        if (list.Count > 0)
            throw new InvalidOperationException(InvalidConfigurationHeading + Environment.NewLine + string.Join(Environment.NewLine, list.Select(p => "  - " + p)));
    }

    // Each setting can be valid alone and wrong together: devices told to come back after the offline timeout would
    // flap to Offline between every two check-ins. Twice the interval leaves room for jitter and one missed check-in.
    private static IEnumerable<string> ValidateCheckInVsOffline(GatewayOptions gateway, DeviceOptions devices)
    {
        var interval = TimeSpan.FromSeconds(gateway.NextCheckInSeconds);
        if (gateway.NextCheckInSeconds >= 1 && devices.OfflineAfter > TimeSpan.Zero && devices.OfflineAfter < 2 * interval)
            yield return $"Devices:OfflineAfter ({devices.OfflineAfter}) must be at least twice Gateway:NextCheckInSeconds ({gateway.NextCheckInSeconds} s), " +
                $"or devices on schedule are marked Offline between check-ins; raise Devices:OfflineAfter to {2 * interval} or more, or lower Gateway:NextCheckInSeconds.";
    }

    private static IEnumerable<string> ValidateToken(AdminTokenOptions t, int i)
    {
        if (t.Sha256.Length != 64 || !t.Sha256.All(Uri.IsHexDigit))
            yield return $"Admin:Tokens:{i}:Sha256 must be the 64-hex SHA-256 of the token (printf %s \"$TOKEN\" | sha256sum).";
        foreach (var scope in t.Scopes.Where(x => x is not ("read" or "operate")))
            yield return $"Admin:Tokens:{i}:Scopes contains '{scope}'; allowed: read, operate.";
    }

    /// <summary>Whether this node carries <paramref name="role"/>.</summary>
    public bool HasRole(string role) => Node.Roles.Contains(role);
}
