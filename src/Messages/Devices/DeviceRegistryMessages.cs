namespace Orchestrator.Messages.Devices;

/// <summary>
/// Asks the device registry read model for devices; every filter given must match (null = any).
/// Answered with <see cref="DeviceList"/>.
/// </summary>
/// <param name="Status">Only devices in this status.</param>
/// <param name="InstalledVersionId">Only devices with this installed version ID.</param>
/// <param name="Tag">Only devices carrying this tag.</param>
/// <param name="RolloutId">Only devices whose current assignment came from this rollout.</param>
/// <param name="Limit">At most this many entries in the answer (the total is always exact).</param>
/// <param name="Attributes">Only devices having every one of these attributes.</param>
public sealed record QueryDevices(DeviceStatus? Status, long? InstalledVersionId, string? Tag, string? RolloutId, int Limit = 1000,
    IReadOnlyDictionary<string, string>? Attributes = null)
    : IOrchestratorMessage
{
    /// <summary>Largest <see cref="Limit"/>: whole-fleet selections (rollouts, fleet view) ask for up to the node's configured limit.</summary>
    public const int MaxLimit = 10_000_000;

    /// <summary>At most this many entries in the answer.</summary>
    public int Limit { get; } = Limit is > 0 and <= MaxLimit
        ? Limit
        : throw new ArgumentOutOfRangeException(nameof(Limit), Limit, $"Limit must be between 1 and {MaxLimit}.");
}

/// <summary>One row of the registry.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Status">Status.</param>
/// <param name="Product">Product.</param>
/// <param name="InstalledVersionId">Installed version ID.</param>
/// <param name="Tags">Tags.</param>
/// <param name="RolloutId">Rollout of the current assignment.</param>
/// <param name="TargetVersionId">Target version ID of the current assignment.</param>
/// <param name="FailedAttempts">Failed attempts of the current work.</param>
/// <param name="LastSeen">When the device was last heard from.</param>
/// <param name="Stale">The device reported it has had no valid, fresh director-signed directive for too long.</param>
/// <param name="FloorVersionId">The device's rollback floor.</param>
/// <param name="UpdaterLost">The device's launcher reports no working updater.</param>
/// <param name="Attributes">The device's attributes (reported, overridden by operator ones); null when it has none.</param>
public sealed record DeviceSummary(
    string DeviceId, DeviceStatus Status, string? Product, long InstalledVersionId, IReadOnlyList<string> Tags, string? RolloutId,
    long? TargetVersionId, int FailedAttempts, DateTimeOffset? LastSeen, bool Stale = false, long FloorVersionId = 0, bool UpdaterLost = false,
    IReadOnlyDictionary<string, string>? Attributes = null);

/// <summary>Answer to <see cref="QueryDevices"/>.</summary>
/// <param name="Devices">Matching devices ordered by id, at most <see cref="QueryDevices.Limit"/>.</param>
/// <param name="Total">Number of matching devices.</param>
/// <param name="EventsApplied">How many journal events the read model has applied (for staleness checks).</param>
public sealed record DeviceList(IReadOnlyList<DeviceSummary> Devices, int Total, long EventsApplied) : IOrchestratorMessage;

/// <summary>
/// Asks the device registry read model how many devices it holds in each status, counted in place without listing them
/// (the fleet gauges ask this on every refresh, whatever the fleet's size). Answered with <see cref="DeviceCounts"/>.
/// </summary>
/// <param name="StaleBefore">A device last heard from before this instant counts as silent.</param>
public sealed record CountDevices(DateTimeOffset StaleBefore) : IOrchestratorMessage;

/// <summary>Answer to <see cref="CountDevices"/>; decommissioned devices are not counted.</summary>
/// <param name="ByStatus">Devices per status (every status present, zero included).</param>
/// <param name="Silent">Devices last heard from before <see cref="CountDevices.StaleBefore"/>.</param>
/// <param name="EventsApplied">How many journal events the read model has applied.</param>
public sealed record DeviceCounts(IReadOnlyDictionary<DeviceStatus, int> ByStatus, int Silent, long EventsApplied) : IOrchestratorMessage;
