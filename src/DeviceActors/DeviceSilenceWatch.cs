using Akka.Actor;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors;

/// <summary>
/// Offline detection for devices whose actor passivated while idle (<see cref="DeviceActorSettings.IdlePassivateAfter"/>):
/// one per <c>devices</c> node, holding only each such device's id and the moment its offline timeout is due, a few
/// dozen bytes instead of a live actor. When a device is due it sends <see cref="CheckSilence"/> through the shard
/// region, which wakes the device's actor wherever its shard now lives; the actor decides from its own record of
/// when it last heard from the device, so a watch made stale by a later check-in (here or on another node) changes
/// nothing. Before waking an actor the watch reads the node's sightings (<see cref="IDeviceSightings"/>): a device the
/// gateways answered without its actor since is rescheduled for its sighting plus the offline timeout, its actor left
/// asleep. A device that passivates again replaces its entry. Entries live in memory: a restarted node has none,
/// as it has no live actors, so a device silent across a node restart is marked Offline at its next contact.
/// </summary>
public sealed class DeviceSilenceWatch : ReceiveActor, IWithTimers
{
    private const string TimerKey = "due";
    private readonly Dictionary<string, DateTimeOffset> _due = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, DateTimeOffset> _queue = new();
    private DateTimeOffset? _timerAt;

    /// <summary>Props of the watch; <paramref name="devices"/> is the device shard region that wakes actors.</summary>
    /// <param name="devices">The device shard region.</param>
    /// <param name="offlineAfter">The devices' offline timeout (<see cref="DeviceActorSettings.OfflineAfter"/>).</param>
    /// <param name="sightings">The node's sightings; none: every due device's actor is woken.</param>
    public static Props Props(IActorRef devices, TimeSpan offlineAfter, IDeviceSightings? sightings = null) =>
        Akka.Actor.Props.Create(() => new DeviceSilenceWatch(devices, offlineAfter, sightings));

    /// <summary>Use <see cref="Props"/>.</summary>
    public DeviceSilenceWatch(IActorRef devices, TimeSpan offlineAfter, IDeviceSightings? sightings)
    {
        Receive<WatchSilence>(w =>
        {
            _due[w.DeviceId] = w.Due;
            _queue.Enqueue(w.DeviceId, w.Due);
            if (_timerAt is not { } at || w.Due < at) Schedule(w.Due);
        });
        Receive<Due>(tick =>
        {
            _timerAt = null;
            var now = DateTimeOffset.UtcNow;
            while (_queue.TryPeek(out var id, out var due) && due <= now)
            {
                _queue.Dequeue();
                // Only the newest entry of a device counts; older ones (it passivated again since) are skipped.
                if (!_due.TryGetValue(id, out var current) || current != due) continue;
                if (sightings?.LastSighted(id) is { } sighted && sighted + offlineAfter > now)
                {
                    _due[id] = sighted + offlineAfter;
                    _queue.Enqueue(id, sighted + offlineAfter);
                    DeviceActorMetrics.OfflineChecksDeferred.Add(1);
                    continue;
                }
                _due.Remove(id);
                devices.Tell(new CheckSilence(id));
            }
            if (_queue.TryPeek(out _, out var next)) Schedule(next);
            // The queue keeps one entry per passivation; trimming it when mostly stale bounds it by the watched devices.
            if (_queue.Count > 2 * _due.Count + 1024) Rebuild();
        });
        Receive<GetWatchedCount>(_ => Sender.Tell(_due.Count));
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    private void Schedule(DateTimeOffset at)
    {
        _timerAt = at;
        var delay = at - DateTimeOffset.UtcNow;
        Timers.StartSingleTimer(TimerKey, Due.Instance, delay > TimeSpan.Zero ? delay : TimeSpan.Zero);
    }

    private void Rebuild()
    {
        _queue.Clear();
        foreach (var (id, due) in _due) _queue.Enqueue(id, due);
    }

    private sealed class Due : INoSerializationVerificationNeeded
    {
        public static readonly Due Instance = new();
    }
}

/// <summary>A device actor passivating while idle asks its node's <see cref="DeviceSilenceWatch"/> to wake it at <paramref name="Due"/> (local only).</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Due">When the device's offline timeout falls due if it stays silent.</param>
public sealed record WatchSilence(string DeviceId, DateTimeOffset Due) : INoSerializationVerificationNeeded;

/// <summary>Asks a <see cref="DeviceSilenceWatch"/> how many devices it watches (answered with an int; tests and diagnostics).</summary>
public sealed class GetWatchedCount : INoSerializationVerificationNeeded
{
    /// <summary>The instance.</summary>
    public static readonly GetWatchedCount Instance = new();
    private GetWatchedCount() { }
}
