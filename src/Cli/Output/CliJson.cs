using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Cli.Output;

/// <summary>
/// Every type <c>orch</c> reads or writes as JSON, with compile-time (source-generated) metadata: <c>orch</c> is
/// published as a Native AOT binary, where reflection-based System.Text.Json is unavailable, and the JIT build uses
/// the same metadata so tests exercise exactly what ships. Settings equal the admin API's (<see cref="AdminJson"/>:
/// web defaults, i.e. camelCase and lenient reads, enums as names). A type missing here fails on first use with
/// <see cref="CliJson.TypeInfo{T}"/>'s message, in every build.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true)]
// Admin API answers.
[JsonSerializable(typeof(ChunkStatsView))]
[JsonSerializable(typeof(ChannelDirectoryView))]
[JsonSerializable(typeof(ChannelDetailView))]
[JsonSerializable(typeof(ChannelView))]
[JsonSerializable(typeof(ChunkVerifyView))]
[JsonSerializable(typeof(ClusterMemberActionView))]
[JsonSerializable(typeof(ClusterView))]
[JsonSerializable(typeof(DeviceCommandAccepted))]
[JsonSerializable(typeof(DeviceHistoryView))]
[JsonSerializable(typeof(DeviceList))]
[JsonSerializable(typeof(DeviceState))]
[JsonSerializable(typeof(PaletteCatalogView))]
[JsonSerializable(typeof(ReleaseDetailView))]
[JsonSerializable(typeof(ReleaseListView))]
[JsonSerializable(typeof(RolloutList))]
[JsonSerializable(typeof(RolloutView))]
[JsonSerializable(typeof(RolloutPreview))]
[JsonSerializable(typeof(ShardLocationView))]
[JsonSerializable(typeof(ShardRegionsView))]
[JsonSerializable(typeof(ShardingStatsView))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(AdminTokenCreated))]
[JsonSerializable(typeof(AdminTokenList))]
[JsonSerializable(typeof(AdminTokenView))]
[JsonSerializable(typeof(AuditList))]
[JsonSerializable(typeof(ReleaseUploadPlan))]
[JsonSerializable(typeof(ReleaseCommitted))]
// Admin API request bodies.
[JsonSerializable(typeof(ClusterMemberRequest))]
[JsonSerializable(typeof(DeviceRegistrationRequest))]
[JsonSerializable(typeof(DeviceProductRequest))]
[JsonSerializable(typeof(DeviceDecommissionRequest))]
[JsonSerializable(typeof(DeviceBatchRegistrationRequest))]
[JsonSerializable(typeof(DeviceBatchRegistered))]
[JsonSerializable(typeof(DeviceBatchProvisionRequest))]
[JsonSerializable(typeof(DeviceProvisionLine))]
[JsonSerializable(typeof(CredentialRequest))]
[JsonSerializable(typeof(ChunkGcRequest))]
[JsonSerializable(typeof(RolloutCreateRequest))]
[JsonSerializable(typeof(RolloutActionRequest))]
[JsonSerializable(typeof(AdminTokenCreateRequest))]
[JsonSerializable(typeof(ChannelSetRequest))]
[JsonSerializable(typeof(ReleaseUploadRequest))]
[JsonSerializable(typeof(DeviceChannelRequest))]
[JsonSerializable(typeof(DeviceAttributesRequest))]
[JsonSerializable(typeof(DeviceGroupRequest))]
[JsonSerializable(typeof(DeviceGroupView))]
[JsonSerializable(typeof(DeviceGroupList))]
// Local command outputs.
[JsonSerializable(typeof(StoreStats))]
[JsonSerializable(typeof(GcReport))]
[JsonSerializable(typeof(StoreVerifyOutput))]
[JsonSerializable(typeof(PublishOutput))]
[JsonSerializable(typeof(ReleaseUploadOutput))]
[JsonSerializable(typeof(DeltaBuildOutput))]
[JsonSerializable(typeof(ReleasePlanOutput))]
[JsonSerializable(typeof(ChunkPatchesOutput))]
[JsonSerializable(typeof(KeysInitOutput))]
[JsonSerializable(typeof(KeysRotateOutput))]
[JsonSerializable(typeof(ReleaseFloorOutput))]
[JsonSerializable(typeof(DeviceProvisionOutput))]
[JsonSerializable(typeof(ErrorOutput))]
internal sealed partial class CliJsonContext : JsonSerializerContext;

/// <summary>The two JSON forms <c>orch</c> uses: compact on the wire, indented for people and scripts on stdout.</summary>
internal static class CliJson
{
    /// <summary>Admin API bodies and the one-line-per-change stream of <c>rollout watch --json</c>.</summary>
    public static readonly CliJsonContext Wire = CliJsonContext.Default;

    /// <summary>Command output (<c>--json</c>): the same settings, indented.</summary>
    public static readonly CliJsonContext Output = new(new JsonSerializerOptions(CliJsonContext.Default.Options) { WriteIndented = true });

    /// <summary>Metadata of <typeparamref name="T"/> in <paramref name="context"/>; throws when it was not registered above.</summary>
    public static JsonTypeInfo<T> TypeInfo<T>(JsonSerializerContext context) =>
        (JsonTypeInfo<T>)TypeInfo(context, typeof(T));

    /// <summary>Non-generic form of <see cref="TypeInfo{T}"/> (request bodies of runtime type).</summary>
    public static JsonTypeInfo TypeInfo(JsonSerializerContext context, Type type) =>
        context.GetTypeInfo(type)
        ?? throw new InvalidOperationException($"Type {type.FullName} is not registered for JSON: add [JsonSerializable(typeof({type.Name}))] to CliJsonContext (src/Cli/Output/CliJson.cs).");
}
