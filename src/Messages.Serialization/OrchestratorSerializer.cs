using System.Collections.Frozen;
using System.Runtime.Serialization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Orchestrator.Messages.Budgets;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Messages.Serialization;

/// <summary>
/// The one serializer for every <see cref="IOrchestratorMessage"/>: System.Text.Json payloads under an explicit,
/// versioned string manifest per type ("DeviceCheckedIn.v1"). Manifests are persisted with each event, so a
/// manifest is never renamed or reused, and the rule for a shape that changes is: a member **appended** with a default
/// that means what every payload without it meant keeps its manifest (older payloads read as that default; each such
/// member has a test reading a payload written before it, `OrchestratorSerializerTests.V1_payloads_written_before_*`);
/// a member removed, renamed or retyped, or a value whose meaning changes, makes a new record with the next ".vN"
/// manifest and an upcast from the old one.
/// </summary>
public sealed class OrchestratorSerializer : SerializerWithStringManifest
{
    /// <summary>Serializer id stored in the journal next to every payload; never change it.</summary>
    public const int SerializerId = 7131;

    private static readonly FrozenDictionary<Type, string> ManifestByType = new Dictionary<Type, string>
    {
        // Commands
        [typeof(RegisterDevice)] = "RegisterDevice.v1",
        [typeof(CheckIn)] = "CheckIn.v1",
        [typeof(AssignTarget)] = "AssignTarget.v1",
        [typeof(CancelAssignment)] = "CancelAssignment.v1",
        [typeof(ReportProgress)] = "ReportProgress.v1",
        [typeof(ReportFailure)] = "ReportFailure.v1",
        [typeof(ReportCompletion)] = "ReportCompletion.v1",
        [typeof(GetDeviceState)] = "GetDeviceState.v1",
        [typeof(ResetRequestSequence)] = "ResetRequestSequence.v1",
        [typeof(SetDeviceProduct)] = "SetDeviceProduct.v1",
        [typeof(ReportUpdaterLost)] = "ReportUpdaterLost.v1",
        [typeof(CheckSilence)] = "CheckSilence.v1",
        [typeof(RecoverDevice)] = "RecoverDevice.v1",
        [typeof(DecommissionDevice)] = "DecommissionDevice.v1",
        [typeof(SetDeviceAttributes)] = "SetDeviceAttributes.v1",
        // Replies and snapshot
        [typeof(DeviceState)] = "DeviceState.v1",
        [typeof(DeviceSnapshot)] = "DeviceSnapshot.v1",
        [typeof(CheckInDecision)] = "CheckInDecision.v1",
        [typeof(DeviceCommandAccepted)] = "DeviceCommandAccepted.v1",
        [typeof(RetryAdvice)] = "RetryAdvice.v1",
        [typeof(DeviceCommandRejected)] = "DeviceCommandRejected.v1",
        [typeof(CheckInDeferred)] = "CheckInDeferred.v1",
        // Persisted events
        [typeof(DeviceRegistered)] = "DeviceRegistered.v1",
        [typeof(DeviceCheckedIn)] = "DeviceCheckedIn.v1",
        [typeof(TargetAssigned)] = "TargetAssigned.v1",
        [typeof(AssignmentCancelled)] = "AssignmentCancelled.v1",
        [typeof(ProgressRecorded)] = "ProgressRecorded.v1",
        [typeof(AttemptFailed)] = "AttemptFailed.v1",
        [typeof(WorkCompleted)] = "WorkCompleted.v1",
        [typeof(DeviceWentOffline)] = "DeviceWentOffline.v1",
        [typeof(DeviceCameBack)] = "DeviceCameBack.v1",
        [typeof(RequestSequenceReset)] = "RequestSequenceReset.v1",
        [typeof(DeviceProductChanged)] = "DeviceProductChanged.v1",
        [typeof(DeviceStaleChanged)] = "DeviceStaleChanged.v1",
        [typeof(DeviceUpdaterLost)] = "DeviceUpdaterLost.v1",
        [typeof(DeviceUpdaterRestored)] = "DeviceUpdaterRestored.v1",
        [typeof(DeviceDecommissioned)] = "DeviceDecommissioned.v1",
        [typeof(DeviceAttributesReported)] = "DeviceAttributesReported.v1",
        [typeof(DeviceAttributesSet)] = "DeviceAttributesSet.v1",
        // Registry
        [typeof(QueryDevices)] = "QueryDevices.v1",
        [typeof(DeviceList)] = "DeviceList.v1",
        [typeof(CountDevices)] = "CountDevices.v1",
        [typeof(DeviceCounts)] = "DeviceCounts.v1",
        // Credentials (pub-sub, never persisted)
        [typeof(DeviceCredentialChanged)] = "DeviceCredentialChanged.v1",
        // Sightings of devices answered without their actors (pub-sub, never persisted)
        [typeof(DevicesSighted)] = "DevicesSighted.v1",
        // Journal marks of device actors for the other nodes' fast paths (pub-sub, never persisted)
        [typeof(DevicesJournaled)] = "DevicesJournaled.v1",
        // Rollouts: commands, replies, events, snapshots
        [typeof(CreateRollout)] = "CreateRollout.v1",
        [typeof(GetRollout)] = "GetRollout.v1",
        [typeof(ListRollouts)] = "ListRollouts.v1",
        [typeof(PauseRollout)] = "PauseRollout.v1",
        [typeof(ResumeRollout)] = "ResumeRollout.v1",
        [typeof(AbortRollout)] = "AbortRollout.v1",
        [typeof(RollbackRollout)] = "RollbackRollout.v1",
        [typeof(RetryFailedDevices)] = "RetryFailedDevices.v1",
        [typeof(RolloutView)] = "RolloutView.v1",
        [typeof(RolloutList)] = "RolloutList.v1",
        [typeof(RolloutRejected)] = "RolloutRejected.v1",
        [typeof(RolloutCreated)] = "RolloutCreated.v1",
        [typeof(RolloutStarted)] = "RolloutStarted.v1",
        [typeof(RolloutDevicesJoined)] = "RolloutDevicesJoined.v1",
        [typeof(RolloutDeviceAssigned)] = "RolloutDeviceAssigned.v1",
        [typeof(RolloutDeviceSucceeded)] = "RolloutDeviceSucceeded.v1",
        [typeof(RolloutDeviceFailed)] = "RolloutDeviceFailed.v1",
        [typeof(RolloutDeviceFailing)] = "RolloutDeviceFailing.v1",
        [typeof(RolloutWaveThresholdMet)] = "RolloutWaveThresholdMet.v1",
        [typeof(RolloutWaveStarted)] = "RolloutWaveStarted.v1",
        [typeof(RolloutPaused)] = "RolloutPaused.v1",
        [typeof(RolloutResumed)] = "RolloutResumed.v1",
        [typeof(RolloutAborted)] = "RolloutAborted.v1",
        [typeof(RolloutRolledBack)] = "RolloutRolledBack.v1",
        [typeof(RolloutCommandsDelivered)] = "RolloutCommandsDelivered.v1",
        [typeof(RolloutFailedDevicesRetried)] = "RolloutFailedDevicesRetried.v1",
        [typeof(RolloutCompleted)] = "RolloutCompleted.v1",
        [typeof(RolloutDeviceRestored)] = "RolloutDeviceRestored.v1",
        [typeof(RolloutDeviceRestoreFailed)] = "RolloutDeviceRestoreFailed.v1",
        [typeof(RolloutRegistered)] = "RolloutRegistered.v1",
        [typeof(RolloutSnapshot)] = "RolloutSnapshot.v1",
        [typeof(RolloutCoordinatorSnapshot)] = "RolloutCoordinatorSnapshot.v1",
        // Channels: commands, replies, pub-sub view, events, snapshot
        [typeof(GetChannels)] = "GetChannels.v1",
        [typeof(SetChannelRelease)] = "SetChannelRelease.v1",
        [typeof(SyncRolloutChannel)] = "SyncRolloutChannel.v1",
        [typeof(RolloutChannelSynced)] = "RolloutChannelSynced.v1",
        [typeof(ChannelRejected)] = "ChannelRejected.v1",
        [typeof(ChannelView)] = "ChannelView.v1",
        [typeof(ChannelDirectoryView)] = "ChannelDirectoryView.v1",
        [typeof(ChannelReleaseSet)] = "ChannelReleaseSet.v1",
        [typeof(ChannelRolloutStarted)] = "ChannelRolloutStarted.v1",
        [typeof(ChannelRolloutCompleted)] = "ChannelRolloutCompleted.v1",
        [typeof(ChannelRolloutRolledBack)] = "ChannelRolloutRolledBack.v1",
        [typeof(ChannelRolloutAborted)] = "ChannelRolloutAborted.v1",
        [typeof(ChannelDirectorySnapshot)] = "ChannelDirectorySnapshot.v1",
        // Download budgets (soft state, never persisted): gateway <-> budget entities
        [typeof(OpenDeviceBudget)] = "OpenDeviceBudget.v1",
        [typeof(DeviceBudgetOpened)] = "DeviceBudgetOpened.v1",
        [typeof(LeaseBudget)] = "LeaseBudget.v1",
        [typeof(BudgetLeased)] = "BudgetLeased.v1",
        [typeof(BudgetDenied)] = "BudgetDenied.v1",
        [typeof(ReturnBudget)] = "ReturnBudget.v1",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, Type> TypeByManifest =
        ManifestByType.ToFrozenDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);

    /// <summary>JSON settings of the persisted format: camelCase names, enums by name (stable across reordering).</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };

    /// <summary>Every type this serializer knows, with its manifest.</summary>
    public static IReadOnlyDictionary<Type, string> Manifests => ManifestByType;

    /// <summary>Created by Akka from the HOCON binding.</summary>
    /// <param name="system">The actor system.</param>
    public OrchestratorSerializer(ExtendedActorSystem system) : base(system) { }

    /// <inheritdoc />
    public override int Identifier => SerializerId;

    /// <inheritdoc />
    public override string Manifest(object o) =>
        ManifestByType.TryGetValue(o.GetType(), out var manifest)
            ? manifest
            : throw new SerializationException(
                $"{o.GetType().FullName} implements IOrchestratorMessage but has no manifest in OrchestratorSerializer; " +
                "add it to the manifest table (with a round-trip sample in Messages.Tests).");

    /// <inheritdoc />
    public override byte[] ToBinary(object obj) =>
        JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType().IsAssignableTo(typeof(IOrchestratorMessage)) && ManifestByType.ContainsKey(obj.GetType())
            ? obj.GetType()
            : throw new SerializationException($"OrchestratorSerializer cannot serialize {obj.GetType().FullName}: it is not a registered IOrchestratorMessage."),
            JsonOptions);

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!TypeByManifest.TryGetValue(manifest, out var type))
            throw new SerializationException(
                $"Unknown manifest '{manifest}' for OrchestratorSerializer (id {SerializerId}); known: {string.Join(", ", TypeByManifest.Keys.Order())}. " +
                "The data was written by a newer version or is corrupt.");
        try
        {
            return JsonSerializer.Deserialize(bytes, type, JsonOptions)
                   ?? throw new SerializationException($"Payload for manifest '{manifest}' is JSON null.");
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new SerializationException($"Cannot deserialize manifest '{manifest}' ({bytes.Length} bytes): {e.Message}", e);
        }
    }
}
