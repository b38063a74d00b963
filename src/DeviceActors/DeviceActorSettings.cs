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
/// <param name="IdlePassivateAfter">
/// A device whose actor has nothing in flight (status Unknown, Idle or Completed: no work it reports on) has its actor
/// passivated this long after its last message, after a snapshot that makes its recovery one snapshot read; the
/// node's silence watch (<see cref="DeviceSilenceWatch"/>) wakes it when the offline timeout is due. Zero keeps
/// every actor live until the offline timeout. Must be shorter than <see cref="OfflineAfter"/>.
/// </param>
/// <param name="UnheardPassivateAfter">
/// An actor woken for a device that has never sent a request (registered, queried, never checked in) passivates this
/// long after its last message, without a snapshot: it holds nothing the journal does not, and there is no offline
/// deadline to keep. Without it a fleet registered in bulk keeps one live actor per device until the offline timeout.
/// Zero keeps such actors live until <see cref="OfflineAfter"/>; when <see cref="IdlePassivateAfter"/> is set, the
/// shorter of the two applies.
/// </param>
public sealed record DeviceActorSettings(TimeSpan OfflineAfter, int SnapshotEvery, TimeSpan RetryBase, TimeSpan RetryCap,
    TimeSpan LastSeenPersistInterval = default, TimeSpan IdlePassivateAfter = default, TimeSpan UnheardPassivateAfter = default)
{
    /// <summary>How long an actor of a device never heard from stays after its last message unless configured: 30 s.</summary>
    public static readonly TimeSpan DefaultUnheardPassivateAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an idle device's actor stays after its last message unless configured: 30 s. Idle check-ins are answered
    /// without the actor (the gateway's fast path), so an idle device wakes its actor about once per
    /// last-seen persist interval; kept live until the offline timeout, a quarter of the fleet would hold an actor at the
    /// default intervals, while passivated each wake costs one snapshot read.
    /// </summary>
    public static readonly TimeSpan DefaultIdlePassivateAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// 15 min offline timeout, snapshot every 100 events, retries 2 s doubling up to 5 min, heartbeats persisted at most
    /// every 10 min: with the gateway's default 5-min check-in interval a device on schedule writes one heartbeat event
    /// in two or three (its third check-in is due before the offline timeout), and the registry's last-seen is never
    /// more than 10 min behind. Idle and unheard actors passivate 30 s after their last message.
    /// </summary>
    public static DeviceActorSettings Default { get; } = new(TimeSpan.FromMinutes(15), 100, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5),
        TimeSpan.FromMinutes(10), DefaultIdlePassivateAfter, DefaultUnheardPassivateAfter);

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

    /// <summary>Idle actors passivate this long after their last message; zero: never before the offline timeout.</summary>
    public TimeSpan IdlePassivateAfter { get; } = IdlePassivateAfter >= TimeSpan.Zero && IdlePassivateAfter < OfflineAfter
        ? IdlePassivateAfter
        : throw new ArgumentOutOfRangeException(nameof(IdlePassivateAfter), IdlePassivateAfter,
            $"IdlePassivateAfter must be zero or positive and shorter than OfflineAfter ({OfflineAfter}).");

    /// <summary>Actors of devices never heard from passivate this long after their last message; zero: at the offline timeout.</summary>
    public TimeSpan UnheardPassivateAfter { get; } = UnheardPassivateAfter >= TimeSpan.Zero && UnheardPassivateAfter < OfflineAfter
        ? UnheardPassivateAfter
        : throw new ArgumentOutOfRangeException(nameof(UnheardPassivateAfter), UnheardPassivateAfter,
            $"UnheardPassivateAfter must be zero or positive and shorter than OfflineAfter ({OfflineAfter}).");

    /// <summary>Largest retry delay before jitter.</summary>
    public TimeSpan RetryCap { get; } = RetryCap >= RetryBase && RetryBase > TimeSpan.Zero
        ? RetryCap
        : throw new ArgumentOutOfRangeException(nameof(RetryCap), RetryCap, $"RetryCap must be >= RetryBase ({RetryBase}) and RetryBase positive.");
}
