using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.Snapshot;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Tests.Actor;

/// <summary>
/// Snapshot stores run saves concurrently. If the device actor issued the next save while an older one was still
/// running, the older could commit after the delete that follows the newer, and stay in the store for good.
/// </summary>
public sealed class SnapshotOrderingTests() : Akka.TestKit.Xunit2.TestKit("""
    akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.first-save-slow"
    akka.persistence.snapshot-store.first-save-slow.class = "Orchestrator.DeviceActors.Tests.Actor.FirstSaveSlowSnapshotStore, Orchestrator.DeviceActors.Tests"
    """)
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_slow_older_snapshot_never_outlives_the_newer_one()
    {
        const string id = "dev-slow-snap";
        var settings = new DeviceActorSettings(TimeSpan.FromMinutes(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
        var a = Sys.ActorOf(DeviceActor.Props(id, settings));
        for (var i = 1; i <= 7; i++)
            await a.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", [$"t{i}"], T0), TimeSpan.FromSeconds(5));

        var pid = DeviceActor.PersistenceIdPrefix + id;
        await AwaitAssertAsync(() =>
        {
            Assert.True(FirstSaveSlowSnapshotStore.SlowSaveFinished.ContainsKey(pid), "the slow first save has not finished yet");
            var kept = FirstSaveSlowSnapshotStore.Stored(pid);
            Assert.Single(kept);
            Assert.True(kept[0] >= 6, $"kept snapshot at {kept[0]}, expected the newest (6 or 7)");
            return Task.CompletedTask;
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100));
        // Still one after the store has gone quiet.
        await Task.Delay(500);
        Assert.Single(FirstSaveSlowSnapshotStore.Stored(pid));
    }
}

/// <summary>In-memory snapshot store whose first save per persistence id takes 1.5 s, and whose others are instant.</summary>
public sealed class FirstSaveSlowSnapshotStore : SnapshotStore
{
    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<long, (SnapshotMetadata Meta, object Snapshot)>> Store = new();
    private static readonly ConcurrentDictionary<string, bool> Started = new();

    /// <summary>Persistence ids whose slow first save has committed.</summary>
    public static readonly ConcurrentDictionary<string, bool> SlowSaveFinished = new();

    /// <summary>Sequence numbers currently stored for <paramref name="pid"/>, ascending.</summary>
    public static long[] Stored(string pid) =>
        Store.TryGetValue(pid, out var s) ? s.Keys.Order().ToArray() : [];

    /// <inheritdoc />
    protected override Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken = default)
    {
        if (!Store.TryGetValue(persistenceId, out var s)) return Task.FromResult<SelectedSnapshot?>(null);
        var best = s.Values.Where(v => v.Meta.SequenceNr <= criteria.MaxSequenceNr).OrderByDescending(v => v.Meta.SequenceNr).FirstOrDefault();
        return Task.FromResult(best.Meta is null ? null : new SelectedSnapshot(best.Meta, best.Snapshot));
    }

    /// <inheritdoc />
    protected override async Task SaveAsync(SnapshotMetadata metadata, object snapshot, CancellationToken cancellationToken = default)
    {
        var first = Started.TryAdd(metadata.PersistenceId, true);
        if (first) await Task.Delay(1500, CancellationToken.None);
        Store.GetOrAdd(metadata.PersistenceId, _ => new())[metadata.SequenceNr] = (metadata, snapshot);
        if (first) SlowSaveFinished[metadata.PersistenceId] = true;
    }

    /// <inheritdoc />
    protected override Task DeleteAsync(SnapshotMetadata metadata, CancellationToken cancellationToken = default)
    {
        if (Store.TryGetValue(metadata.PersistenceId, out var s)) s.TryRemove(metadata.SequenceNr, out _);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    protected override Task DeleteAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken = default)
    {
        if (Store.TryGetValue(persistenceId, out var s))
            foreach (var seq in s.Keys.Where(k => k <= criteria.MaxSequenceNr).ToArray()) s.TryRemove(seq, out _);
        return Task.CompletedTask;
    }
}
