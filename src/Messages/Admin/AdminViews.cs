using System.Text.Json;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Messages.Admin;

// Answers of the admin API's query routes (JSON over HTTP, never persisted). The node builds them, `orch` and the
// dashboard read them; field names are the wire contract of /admin/v1.

/// <summary>One member of the cluster.</summary>
/// <param name="Address">Akka address, e.g. <c>akka.tcp://orchestrator@10.0.0.5:4053</c>.</param>
/// <param name="Status">Membership status (Joining, Up, Leaving, Exiting, Down, Removed, WeaklyUp).</param>
/// <param name="Roles">Cluster roles.</param>
/// <param name="Reachable">False when some member's failure detector flags it unreachable.</param>
/// <param name="IsLeader">True for the cluster leader.</param>
/// <param name="IsSelf">True for the node that answered.</param>
public sealed record ClusterMemberView(string Address, string Status, IReadOnlyList<string> Roles, bool Reachable, bool IsLeader, bool IsSelf);

/// <summary>Answer of <c>GET /admin/v1/cluster</c>.</summary>
/// <param name="SelfAddress">Address of the node that answered.</param>
/// <param name="Leader">Leader address, if any.</param>
/// <param name="Members">Every member, ordered by address.</param>
/// <param name="UnreachableCount">Members flagged unreachable.</param>
public sealed record ClusterView(string SelfAddress, string? Leader, IReadOnlyList<ClusterMemberView> Members, int UnreachableCount);

/// <summary>Body of <c>POST /admin/v1/cluster/leave</c> and <c>/down</c>.</summary>
/// <param name="Address">Member address; must be a current member.</param>
public sealed record ClusterMemberRequest(string Address);

/// <summary>Answer of leave/down: what was asked of the cluster.</summary>
/// <param name="Address">Member address.</param>
/// <param name="Action">leave or down.</param>
/// <param name="PreviousStatus">Member status when the request arrived.</param>
public sealed record ClusterMemberActionView(string Address, string Action, string PreviousStatus);

/// <summary>One shard hosted by the answering node.</summary>
/// <param name="ShardId">Shard id.</param>
/// <param name="EntityCount">Entities alive in it.</param>
public sealed record ShardView(string ShardId, int EntityCount);

/// <summary>The shard region of one entity type on the answering node.</summary>
/// <param name="TypeName">Sharding type name (device, chunk).</param>
/// <param name="HostedHere">False when this node only runs a proxy (it hosts no shards of the type).</param>
/// <param name="Shards">Shards hosted here, ordered by id.</param>
public sealed record ShardRegionView(string TypeName, bool HostedHere, IReadOnlyList<ShardView> Shards);

/// <summary>Answer of <c>GET /admin/v1/sharding/regions</c>.</summary>
/// <param name="Node">Address of the node that answered.</param>
/// <param name="Regions">One entry per entity type.</param>
public sealed record ShardRegionsView(string Node, IReadOnlyList<ShardRegionView> Regions);

/// <summary>Shard counts of one region (node) of one type, cluster-wide.</summary>
/// <param name="Address">Node address.</param>
/// <param name="Shards">Shards it hosts.</param>
/// <param name="Entities">Entities alive over those shards.</param>
/// <param name="FailedShards">Shards that did not answer in time.</param>
public sealed record RegionStatsView(string Address, int Shards, int Entities, IReadOnlyList<string> FailedShards);

/// <summary>Cluster-wide statistics of one entity type.</summary>
/// <param name="TypeName">Sharding type name.</param>
/// <param name="Regions">Per-node figures, ordered by address.</param>
public sealed record TypeShardingStatsView(string TypeName, IReadOnlyList<RegionStatsView> Regions);

/// <summary>Answer of <c>GET /admin/v1/sharding/stats</c>.</summary>
/// <param name="Types">One entry per entity type.</param>
public sealed record ShardingStatsView(IReadOnlyList<TypeShardingStatsView> Types);

/// <summary>Answer of <c>GET /admin/v1/sharding/locate/{deviceId}</c>.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="ShardId">Shard the id hashes to (stable; same on every node).</param>
/// <param name="Address">Node currently hosting the shard; null when the shard is not allocated (no device in it is alive).</param>
/// <param name="EntityAlive">True when the device's actor is running now.</param>
public sealed record ShardLocationView(string DeviceId, string ShardId, string? Address, bool EntityAlive);

/// <summary>One persisted event of a device (<c>GET /admin/v1/devices/{id}/history</c>).</summary>
/// <param name="SequenceNr">Journal sequence number.</param>
/// <param name="Type">Event type name, e.g. DeviceCheckedIn.</param>
/// <param name="At">When it happened.</param>
/// <param name="Summary">One human line.</param>
/// <param name="Data">The event's fields.</param>
public sealed record DeviceHistoryEntry(long SequenceNr, string Type, DateTimeOffset At, string Summary, JsonElement Data);

/// <summary>Answer of <c>GET /admin/v1/devices/{id}/history</c>.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Events">Events in journal order (oldest first), after any snapshot-free replay.</param>
public sealed record DeviceHistoryView(string DeviceId, IReadOnlyList<DeviceHistoryEntry> Events);

/// <summary>Body of <c>POST /admin/v1/devices/{id}/register</c> (part of <c>orch device provision</c>).</summary>
/// <param name="Product">Product the device runs.</param>
/// <param name="Tags">Operator tags (replace earlier ones).</param>
public sealed record DeviceRegistrationRequest(string Product, IReadOnlyList<string>? Tags);

/// <summary>Body of <c>POST /admin/v1/devices/{id}/product</c>: move the device to another product (the only way its product changes).</summary>
/// <param name="Product">The new product.</param>
/// <param name="Operator">Who (optional; recorded in the journal).</param>
public sealed record DeviceProductRequest(string Product, string? Operator = null);

/// <summary>One device of <c>POST /admin/v1/devices/register-batch</c>.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Product">Product the device runs.</param>
/// <param name="Tags">Operator tags (replace earlier ones).</param>
public sealed record DeviceBatchEntry(string DeviceId, string Product, IReadOnlyList<string>? Tags);

/// <summary>
/// Body of <c>POST /admin/v1/devices/register-batch</c> (<c>orch device register-batch</c>): every entry is validated
/// (and checked against the device's recorded product) before any is registered.
/// </summary>
/// <param name="Devices">The devices, at most <see cref="MaxDevices"/>, each id once.</param>
public sealed record DeviceBatchRegistrationRequest(IReadOnlyList<DeviceBatchEntry>? Devices)
{
    /// <summary>Most devices in one request; send larger fleets in several.</summary>
    public const int MaxDevices = 10_000;
}

/// <summary>Answer of <c>POST /admin/v1/devices/register-batch</c>.</summary>
/// <param name="Devices">Devices in the request.</param>
/// <param name="Registered">Devices whose product or tags changed (one journaled event each).</param>
/// <param name="Unchanged">Devices already registered exactly so (nothing written).</param>
public sealed record DeviceBatchRegistered(int Devices, int Registered, int Unchanged);

/// <summary>One version of a product in the store.</summary>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Monotonic version ID.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
/// <param name="CreatedUtc">Publish time.</param>
/// <param name="Channels">Channels pointing at it.</param>
public sealed record ReleaseView(string Version, long VersionId, string ManifestPath, DateTimeOffset CreatedUtc, IReadOnlyList<string> Channels);

/// <summary>One product and its versions (oldest first).</summary>
/// <param name="Product">Product name.</param>
/// <param name="Versions">Versions listed in its index.</param>
public sealed record ProductReleasesView(string Product, IReadOnlyList<ReleaseView> Versions);

/// <summary>Answer of <c>GET /admin/v1/releases</c>.</summary>
/// <param name="Products">Products ordered by name.</param>
public sealed record ReleaseListView(IReadOnlyList<ProductReleasesView> Products);

/// <summary>Answer of <c>GET /admin/v1/releases/{product}/{version}</c>.</summary>
/// <param name="Product">Product.</param>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID.</param>
/// <param name="ManifestPath">Manifest path.</param>
/// <param name="CreatedUtc">Publish time.</param>
/// <param name="ExpiresUtc">Manifest expiry.</param>
/// <param name="Files">Regular files.</param>
/// <param name="Symlinks">Symbolic links.</param>
/// <param name="TotalBytes">Sum of file sizes.</param>
/// <param name="DistinctChunks">Distinct chunks referenced.</param>
/// <param name="InventoryDigest">Inventory digest of the tree.</param>
/// <param name="SignaturePresent">Whether the detached signature file exists.</param>
/// <param name="Channels">Channels pointing at it.</param>
/// <param name="DevicesInstalled">Devices of the product that report this version ID installed (registry read model).</param>
public sealed record ReleaseDetailView(string Product, string Version, long VersionId, string ManifestPath, DateTimeOffset CreatedUtc,
    DateTimeOffset ExpiresUtc, int Files, int Symlinks, long TotalBytes, int DistinctChunks, string InventoryDigest, bool SignaturePresent,
    IReadOnlyList<string> Channels, int DevicesInstalled);

/// <summary>Answer of <c>GET /admin/v1/chunks/stats</c>.</summary>
/// <param name="Backend">Blob backend (filesystem or postgresql).</param>
/// <param name="Chunks">Chunk objects in the file store.</param>
/// <param name="ChunkBytes">Their bytes.</param>
/// <param name="ReferencedChunks">Chunks a listed manifest refers to.</param>
/// <param name="UnreferencedChunks">Chunks nothing refers to (chunks gc frees them).</param>
/// <param name="UnreferencedBytes">Their bytes.</param>
/// <param name="Products">Products in the store.</param>
/// <param name="Versions">Versions listed over all products.</param>
public sealed record ChunkStatsView(string Backend, long Chunks, long ChunkBytes, long ReferencedChunks, long UnreferencedChunks,
    long UnreferencedBytes, int Products, int Versions);

/// <summary>Answer of <c>POST /admin/v1/chunks/verify</c>.</summary>
/// <param name="Ok">True when no problem was found.</param>
/// <param name="ChunksChecked">Chunks hashed against their ids.</param>
/// <param name="ManifestsChecked">Manifests parsed and cross-checked.</param>
/// <param name="Problems">Every problem found.</param>
public sealed record ChunkVerifyView(bool Ok, long ChunksChecked, int ManifestsChecked, IReadOnlyList<string> Problems);

/// <summary>Devices of one product at one installed version.</summary>
/// <param name="Product">Product (null for devices that never checked in).</param>
/// <param name="VersionId">Installed version ID (0 = nothing installed).</param>
/// <param name="Version">Version string from the store's index, when known.</param>
/// <param name="Devices">How many.</param>
public sealed record VersionShareView(string? Product, long VersionId, string? Version, int Devices);

/// <summary>A device whose last attempt failed.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Stage">Where it failed.</param>
/// <param name="Reason">What the agent reported.</param>
/// <param name="Attempt">Failed attempts so far.</param>
/// <param name="At">When.</param>
public sealed record FailureView(string DeviceId, string Stage, string Reason, int Attempt, DateTimeOffset At);

/// <summary>Answer of <c>GET /admin/v1/fleet</c>: what the dashboard shows about devices.</summary>
/// <param name="GeneratedUtc">When this answer was built.</param>
/// <param name="TotalDevices">Devices known to the registry.</param>
/// <param name="ByStatus">Device count per status (every status present, zero included).</param>
/// <param name="Versions">Version distribution, largest first.</param>
/// <param name="RecentFailures">Up to 20 failed devices, newest failure first.</param>
/// <param name="FailureReasons">Failed devices per reason, largest first.</param>
/// <param name="EventsApplied">Journal events the registry has applied (staleness indicator).</param>
public sealed record FleetView(DateTimeOffset GeneratedUtc, int TotalDevices, IReadOnlyDictionary<string, int> ByStatus,
    IReadOnlyList<VersionShareView> Versions, IReadOnlyList<FailureView> RecentFailures, IReadOnlyDictionary<string, int> FailureReasons,
    long EventsApplied);

/// <summary>Helpers for views of device state.</summary>
public static class DeviceStatusNames
{
    /// <summary>Every status name in declaration order.</summary>
    public static IReadOnlyList<string> All { get; } = Enum.GetNames<DeviceStatus>();
}

/// <summary>Body of <c>POST /admin/v1/devices/{id}/decommission</c>.</summary>
/// <param name="Reason">Why (required; kept in the device's history).</param>
public sealed record DeviceDecommissionRequest(string? Reason);
