namespace Orchestrator.Messages.Devices;

/// <summary>
/// A batch of devices one node's gateway answered without their actors (the idle fast path): published on
/// <see cref="SightingTopics.Sightings"/> about once a second, so that the node hosting a device's actor counts the
/// device as heard (offline detection) wherever its check-ins landed. Pub-sub only, never persisted.
/// </summary>
/// <param name="DeviceIds">The devices sighted.</param>
/// <param name="SightedUtcTicks">When each was sighted (UTC ticks), index for index with <paramref name="DeviceIds"/>.</param>
public sealed record DevicesSighted(IReadOnlyList<string> DeviceIds, IReadOnlyList<long> SightedUtcTicks) : IOrchestratorMessage
{
    /// <summary>Most sightings in one message (about 50 bytes each in the serialized batch, well inside a remoting frame).</summary>
    public const int MaxBatch = 4096;

    /// <summary>The device ids.</summary>
    public IReadOnlyList<string> DeviceIds { get; } = DeviceIds.Count == SightedUtcTicks.Count && DeviceIds.Count <= MaxBatch
        ? DeviceIds
        : throw new ArgumentException($"A sightings batch needs one time per device and at most {MaxBatch} devices; got {DeviceIds.Count} ids and {SightedUtcTicks.Count} times.", nameof(DeviceIds));
}

/// <summary>
/// A batch of events the device actors of one node journaled: published on <see cref="SightingTopics.Journaled"/> as
/// soon as they are, so that every other node's idle fast path stops answering those devices from registry rows that
/// have not folded the events yet. Pub-sub only, never persisted.
/// </summary>
/// <param name="DeviceIds">The devices.</param>
/// <param name="SequenceNrs">The journal sequence number each device's actor reached, index for index with <paramref name="DeviceIds"/>.</param>
/// <param name="SequenceResets">Indexes (into <paramref name="DeviceIds"/>) of devices whose request sequence was reset (a credential rotation).</param>
public sealed record DevicesJournaled(IReadOnlyList<string> DeviceIds, IReadOnlyList<long> SequenceNrs, IReadOnlyList<int> SequenceResets) : IOrchestratorMessage
{
    /// <summary>Most devices in one message (about 50 bytes each in the serialized batch, well inside a remoting frame).</summary>
    public const int MaxBatch = 4096;

    /// <summary>The device ids.</summary>
    public IReadOnlyList<string> DeviceIds { get; } = DeviceIds.Count == SequenceNrs.Count && DeviceIds.Count <= MaxBatch
        && SequenceResets.All(i => i >= 0 && i < DeviceIds.Count)
        ? DeviceIds
        : throw new ArgumentException($"A journaled batch needs one sequence number per device, at most {MaxBatch} devices and resets that index them; got {DeviceIds.Count} ids, {SequenceNrs.Count} sequence numbers and resets [{string.Join(", ", SequenceResets)}].", nameof(DeviceIds));
}

/// <summary>Distributed pub-sub topics of device sightings and journal marks.</summary>
public static class SightingTopics
{
    /// <summary>Every node's fast-path sightings are published here in <see cref="DevicesSighted"/> batches.</summary>
    public const string Sightings = "orch-device-sightings";

    /// <summary>Every node's device actors' journal marks are published here in <see cref="DevicesJournaled"/> batches.</summary>
    public const string Journaled = "orch-device-journaled";
}
