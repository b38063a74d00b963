namespace Orchestrator.DeviceActors;

/// <summary>Tunables of the device actor.</summary>
/// <param name="OfflineAfter">Silence after which a device is marked Offline and its actor passivated.</param>
/// <param name="SnapshotEvery">Save a snapshot after this many events (older snapshots are deleted; events stay for the registry).</param>
/// <param name="RetryBase">First retry delay before jitter.</param>
/// <param name="RetryCap">Largest retry delay before jitter.</param>
/// <param name="LastSeenPersistInterval">
/// A check-in that changes nothing but LastSeen (a heartbeat) is persisted only when the last persisted LastSeen is at
/// least this old; zero persists every check-in. It bounds how stale the persisted LastSeen (the registry's "last
/// seen", <see cref="Orchestrator.Messages.Devices.DeviceWentOffline"/>) can be. Offline detection does not read it (the
/// actor's silence timer is re-armed by every check-in, persisted or not), but it must stay below
/// <see cref="OfflineAfter"/> so that a device the registry shows as "last seen" longer ago than the offline timeout
/// really is offline.
/// </param>
public sealed record DeviceActorSettings(TimeSpan OfflineAfter, int SnapshotEvery, TimeSpan RetryBase, TimeSpan RetryCap,
    TimeSpan LastSeenPersistInterval = default)
{
    /// <summary>
    /// 15 min offline timeout, snapshot every 100 events, retries 2 s doubling up to 5 min, heartbeats persisted at most
    /// every 5 min: a third of the offline timeout, so the registry's last-seen is never more than 5 min behind, while a
    /// fleet checking in every minute writes one heartbeat event in five instead of every one.
    /// </summary>
    public static DeviceActorSettings Default { get; } = new(TimeSpan.FromMinutes(15), 100, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5),
        TimeSpan.FromMinutes(5));

    /// <summary>Silence after which a device is marked Offline.</summary>
    public TimeSpan OfflineAfter { get; } = OfflineAfter > TimeSpan.Zero
        ? OfflineAfter
        : throw new ArgumentOutOfRangeException(nameof(OfflineAfter), OfflineAfter, "OfflineAfter must be positive.");

    /// <summary>Save a snapshot after this many events.</summary>
    public int SnapshotEvery { get; } = SnapshotEvery > 0
        ? SnapshotEvery
        : throw new ArgumentOutOfRangeException(nameof(SnapshotEvery), SnapshotEvery, "SnapshotEvery must be at least 1.");

    /// <summary>Heartbeats (check-ins that change nothing but LastSeen) are persisted at most this often; zero: always.</summary>
    public TimeSpan LastSeenPersistInterval { get; } = LastSeenPersistInterval >= TimeSpan.Zero && LastSeenPersistInterval < OfflineAfter
        ? LastSeenPersistInterval
        : throw new ArgumentOutOfRangeException(nameof(LastSeenPersistInterval), LastSeenPersistInterval,
            $"LastSeenPersistInterval must be zero or positive and shorter than OfflineAfter ({OfflineAfter}).");

    /// <summary>Largest retry delay before jitter.</summary>
    public TimeSpan RetryCap { get; } = RetryCap >= RetryBase && RetryBase > TimeSpan.Zero
        ? RetryCap
        : throw new ArgumentOutOfRangeException(nameof(RetryCap), RetryCap, $"RetryCap must be >= RetryBase ({RetryBase}) and RetryBase positive.");
}
