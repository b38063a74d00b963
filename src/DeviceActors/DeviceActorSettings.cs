namespace Orchestrator.DeviceActors;

/// <summary>Tunables of the device actor.</summary>
/// <param name="OfflineAfter">Silence after which a device is marked Offline and its actor passivated.</param>
/// <param name="SnapshotEvery">Save a snapshot after this many events (older snapshots are deleted; events stay for the registry).</param>
/// <param name="RetryBase">First retry delay before jitter.</param>
/// <param name="RetryCap">Largest retry delay before jitter.</param>
public sealed record DeviceActorSettings(TimeSpan OfflineAfter, int SnapshotEvery, TimeSpan RetryBase, TimeSpan RetryCap)
{
    /// <summary>15 min offline timeout, snapshot every 100 events, retries 2 s doubling up to 5 min.</summary>
    public static DeviceActorSettings Default { get; } = new(TimeSpan.FromMinutes(15), 100, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5));

    /// <summary>Silence after which a device is marked Offline.</summary>
    public TimeSpan OfflineAfter { get; } = OfflineAfter > TimeSpan.Zero
        ? OfflineAfter
        : throw new ArgumentOutOfRangeException(nameof(OfflineAfter), OfflineAfter, "OfflineAfter must be positive.");

    /// <summary>Save a snapshot after this many events.</summary>
    public int SnapshotEvery { get; } = SnapshotEvery > 0
        ? SnapshotEvery
        : throw new ArgumentOutOfRangeException(nameof(SnapshotEvery), SnapshotEvery, "SnapshotEvery must be at least 1.");

    /// <summary>Largest retry delay before jitter.</summary>
    public TimeSpan RetryCap { get; } = RetryCap >= RetryBase && RetryBase > TimeSpan.Zero
        ? RetryCap
        : throw new ArgumentOutOfRangeException(nameof(RetryCap), RetryCap, $"RetryCap must be >= RetryBase ({RetryBase}) and RetryBase positive.");
}
