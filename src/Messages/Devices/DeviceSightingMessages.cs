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

/// <summary>Distributed pub-sub topics of device sightings.</summary>
public static class SightingTopics
{
    /// <summary>Every node's fast-path sightings are published here in <see cref="DevicesSighted"/> batches.</summary>
    public const string Sightings = "orch-device-sightings";
}
