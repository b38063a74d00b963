namespace Orchestrator.DeviceActors;

/// <summary>
/// The node's record of when each device was last answered without its actor (the gateway's idle fast path, on this
/// node or, carried in batches, on any other). Offline detection reads it so that a device answered only by the fast
/// path is not taken for silent: a device's last contact is the later of what its actor heard and its last sighting.
/// </summary>
public interface IDeviceSightings
{
    /// <summary>When <paramref name="deviceId"/> was last sighted, or null when this node knows of no sighting.</summary>
    DateTimeOffset? LastSighted(string deviceId);
}
