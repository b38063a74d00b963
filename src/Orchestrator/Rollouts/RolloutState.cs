using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// State of one rollout, folded from its events by <see cref="Apply"/> (recovery and live use the same function).
/// Counters are derived from the per-device outcomes, so they are exact whenever the events are: each outcome
/// change is one persisted event, decided from the device actor's own persisted state.
/// </summary>
public sealed class RolloutState
{
    private readonly Dictionary<string, RolloutDeviceRecord> _devices = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    private RolloutState(RolloutSpec spec, int waveCount, DateTimeOffset createdAt)
    {
        Spec = spec;
        WaveCount = waveCount;
        AcknowledgedFailures = new int[waveCount];
        CreatedAt = createdAt;
        UpdatedAt = createdAt;
    }

    /// <summary>The spec.</summary>
    public RolloutSpec Spec { get; }
    /// <summary>Status.</summary>
    public RolloutStatus Status { get; private set; } = RolloutStatus.Created;
    /// <summary>True once the start time passed (a paused rollout may not have started).</summary>
    public bool Started { get; private set; }
    /// <summary>Current wave (0-based).</summary>
    public int CurrentWave { get; private set; }
    /// <summary>Number of waves.</summary>
    public int WaveCount { get; }
    /// <summary>Reason of the last pause, abort or rollback.</summary>
    public string? PauseReason { get; private set; }
    /// <summary>Per wave: failures acknowledged by a resume (not counted against the error threshold).</summary>
    public int[] AcknowledgedFailures { get; private set; }
    /// <summary>When the current wave met its success threshold.</summary>
    public DateTimeOffset? ThresholdMetAt { get; private set; }
    /// <summary>Abort/rollback commands still to be delivered.</summary>
    public bool CommandsPending { get; private set; }
    /// <summary>Releases a rollback restores.</summary>
    public IReadOnlyList<RollbackVersion> RollbackVersions { get; private set; } = [];
    /// <summary>Created.</summary>
    public DateTimeOffset CreatedAt { get; }
    /// <summary>Last event.</summary>
    public DateTimeOffset UpdatedAt { get; private set; }

    /// <summary>True for Created, Running and Paused (the rollout still claims its devices).</summary>
    public bool IsActive => Status is RolloutStatus.Created or RolloutStatus.Running or RolloutStatus.Paused;

    /// <summary>Number of devices in the rollout.</summary>
    public int DeviceCount => _order.Count;

    /// <summary>Devices in assignment order.</summary>
    public IEnumerable<RolloutDeviceRecord> Devices => _order.Select(id => _devices[id]);

    /// <summary>A device's record, or null.</summary>
    public RolloutDeviceRecord? Find(string deviceId) => _devices.GetValueOrDefault(deviceId);

    /// <summary>Cuts the plan: order the devices (by id, or shuffled with the spec's seed), then waves by count or percentage; the last wave takes the rest.</summary>
    /// <param name="spec">The spec.</param>
    /// <param name="deviceIds">Devices selected at creation.</param>
    public static IReadOnlyList<PlannedWave> Plan(RolloutSpec spec, IEnumerable<string> deviceIds)
    {
        var ordered = deviceIds.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (spec.RandomizeOrder) new Random(spec.Seed).Shuffle(ordered);
        var waves = new List<PlannedWave>();
        var taken = 0;
        for (var i = 0; i < spec.Waves.Count; i++)
        {
            var w = spec.Waves[i];
            var size = i == spec.Waves.Count - 1
                ? ordered.Length - taken
                : w.Kind == WaveSizeKind.Count ? (int)w.Size : (int)Math.Ceiling(w.Size * ordered.Length / 100.0);
            size = Math.Clamp(size, 0, ordered.Length - taken);
            waves.Add(new PlannedWave(ordered[taken..(taken + size)]));
            taken += size;
        }
        return waves;
    }

    /// <summary>The state after <see cref="RolloutCreated"/>.</summary>
    public static RolloutState Create(RolloutCreated e)
    {
        var s = new RolloutState(e.Spec, e.Plan.Count, e.At);
        for (var w = 0; w < e.Plan.Count; w++)
            foreach (var id in e.Plan[w].DeviceIds) s.Add(id, w);
        return s;
    }

    /// <summary>Restores a snapshot.</summary>
    public static RolloutState FromSnapshot(RolloutSnapshot snap)
    {
        var s = new RolloutState(snap.Spec, snap.WaveCount, snap.CreatedAt)
        {
            Status = snap.Status, Started = snap.Started, CurrentWave = snap.CurrentWave, PauseReason = snap.PauseReason,
            AcknowledgedFailures = [.. snap.AcknowledgedFailures], ThresholdMetAt = snap.ThresholdMetAt, CommandsPending = snap.CommandsPending,
            RollbackVersions = snap.RollbackVersions, UpdatedAt = snap.UpdatedAt,
        };
        foreach (var d in snap.Devices)
        {
            s._devices[d.DeviceId] = d;
            s._order.Add(d.DeviceId);
        }
        return s;
    }

    /// <summary>The snapshot payload.</summary>
    public RolloutSnapshot ToSnapshot() => new(Spec, Status, Started, CurrentWave, WaveCount, PauseReason, Devices.ToList(),
        [.. AcknowledgedFailures], ThresholdMetAt, CommandsPending, RollbackVersions, CreatedAt, UpdatedAt);

    private void Add(string id, int wave)
    {
        if (_devices.ContainsKey(id)) return;
        _devices[id] = new RolloutDeviceRecord(id, wave, RolloutDeviceOutcome.Pending, 0, null);
        _order.Add(id);
    }

    private void Set(string id, Func<RolloutDeviceRecord, RolloutDeviceRecord> change)
    {
        if (_devices.TryGetValue(id, out var d)) _devices[id] = change(d);
    }

    /// <summary>Folds one event into the state. Total: an event that does not fit is ignored, never thrown on.</summary>
    public void Apply(IRolloutEvent e)
    {
        switch (e)
        {
            case RolloutStarted:
                Started = true;
                if (Status == RolloutStatus.Created) Status = RolloutStatus.Running;
                break;
            case RolloutDevicesJoined j:
                foreach (var id in j.DeviceIds) Add(id, WaveCount - 1);
                break;
            case RolloutDeviceAssigned a:
                Set(a.DeviceId, d => d with { Outcome = RolloutDeviceOutcome.InProgress, PreviousVersionId = a.PreviousVersionId, FailureReason = null, AssignedAt = a.At, FailingAttempts = 0 });
                break;
            case RolloutDeviceSucceeded ok:
                Set(ok.DeviceId, d => d with { Outcome = RolloutDeviceOutcome.Succeeded, FailureReason = null, FailingAttempts = 0 });
                break;
            case RolloutDeviceFailed f:
                Set(f.DeviceId, d => d with { Outcome = RolloutDeviceOutcome.Failed, FailureReason = f.Reason, FailingAttempts = 0 });
                break;
            case RolloutDeviceFailing f:
                Set(f.DeviceId, d => d.Outcome == RolloutDeviceOutcome.InProgress ? d with { FailingAttempts = Math.Max(1, f.Attempts), FailureReason = f.Reason } : d);
                break;
            case RolloutWaveThresholdMet m:
                if (m.Wave == CurrentWave) ThresholdMetAt = m.At;
                break;
            case RolloutWaveStarted w:
                CurrentWave = w.Wave;
                ThresholdMetAt = null;
                break;
            case RolloutPaused p:
                Status = RolloutStatus.Paused;
                PauseReason = $"{p.Reason} ({p.Operator})";
                break;
            case RolloutResumed:
                Status = Started ? RolloutStatus.Running : RolloutStatus.Created;
                PauseReason = null;
                for (var w = 0; w < WaveCount; w++) AcknowledgedFailures[w] = Troubled(w);
                break;
            case RolloutAborted a:
                Status = RolloutStatus.Aborted;
                PauseReason = $"{a.Reason} ({a.Operator})";
                CommandsPending = true;
                break;
            case RolloutRolledBack r:
                Status = RolloutStatus.RolledBack;
                PauseReason = $"{r.Reason} ({r.Operator})";
                RollbackVersions = r.Versions;
                CommandsPending = true;
                var restorable = r.Versions.Select(v => v.VersionId).ToHashSet();
                foreach (var id in _order.ToList())
                    Set(id, d => d.Outcome != RolloutDeviceOutcome.Pending && restorable.Contains(d.PreviousVersionId)
                        ? d with { Rollback = RollbackOutcome.InProgress, RollbackFailure = null } : d);
                break;
            case RolloutDeviceRestored ok:
                Set(ok.DeviceId, d => d with { Rollback = RollbackOutcome.Restored, RollbackFailure = null });
                break;
            case RolloutDeviceRestoreFailed f:
                Set(f.DeviceId, d => d with { Rollback = RollbackOutcome.Failed, RollbackFailure = f.Reason });
                break;
            case RolloutCommandsDelivered:
                CommandsPending = false;
                break;
            case RolloutFailedDevicesRetried r:
                foreach (var id in r.DeviceIds)
                    Set(id, d => d.Outcome == RolloutDeviceOutcome.Failed ? d with { Outcome = RolloutDeviceOutcome.Pending, FailureReason = null } : d);
                for (var w = 0; w < WaveCount; w++)
                    AcknowledgedFailures[w] = Math.Min(AcknowledgedFailures[w], Troubled(w));
                if (Status == RolloutStatus.Completed) Status = RolloutStatus.Running;
                break;
            case RolloutCompleted:
                Status = RolloutStatus.Completed;
                break;
        }
        UpdatedAt = e.At;
    }

    /// <summary>Devices of <paramref name="wave"/> with <paramref name="outcome"/>.</summary>
    public int Count(int wave, RolloutDeviceOutcome outcome) => _devices.Values.Count(d => d.Wave == wave && d.Outcome == outcome);

    /// <summary>Devices of <paramref name="wave"/> that failed or are failing (both count against the error threshold).</summary>
    public int Troubled(int wave) => _devices.Values.Count(d => d.Wave == wave && IsTroubled(d));

    private static bool IsTroubled(RolloutDeviceRecord d) =>
        d.Outcome == RolloutDeviceOutcome.Failed || d.Outcome == RolloutDeviceOutcome.InProgress && d.FailingAttempts > 0;

    /// <summary>Exact per-wave counters.</summary>
    public IReadOnlyList<WaveCounters> Counters()
    {
        var c = new int[WaveCount, 5];
        foreach (var d in _devices.Values)
        {
            c[d.Wave, (int)d.Outcome]++;
            if (d.Outcome == RolloutDeviceOutcome.InProgress && d.FailingAttempts > 0) c[d.Wave, 4]++;
        }
        return Enumerable.Range(0, WaveCount).Select(w => new WaveCounters(w + 1,
            c[w, 0] + c[w, 1] + c[w, 2] + c[w, 3], c[w, 0], c[w, 1], c[w, 2], c[w, 3], c[w, 4])).ToList();
    }

    /// <summary>The answer to queries and accepted commands.</summary>
    public RolloutView View() => new(Spec, Status, CurrentWave + 1, PauseReason, Counters(),
        Devices.Where(IsTroubled).Take(100)
            .Select(d => new RolloutDeviceFailure(d.DeviceId, d.Wave + 1, d.FailureReason ?? "", d.Outcome == RolloutDeviceOutcome.InProgress))
            .Concat(Devices.Where(d => d.Rollback == RollbackOutcome.Failed).Take(100)
                .Select(d => new RolloutDeviceFailure(d.DeviceId, d.Wave + 1, "rollback: " + d.RollbackFailure)))
            .ToList(),
        CommandsPending, CreatedAt, UpdatedAt, RollbackProgress());

    /// <summary>Rollback progress; null when the rollout was not rolled back.</summary>
    public RollbackCounters? RollbackProgress()
    {
        if (Status != RolloutStatus.RolledBack) return null;
        var touched = Devices.Where(d => d.Rollback is not null).ToList();
        return new RollbackCounters(touched.Count, touched.Count(d => d.Rollback == RollbackOutcome.InProgress),
            touched.Count(d => d.Rollback == RollbackOutcome.Restored), touched.Count(d => d.Rollback == RollbackOutcome.Failed));
    }

    /// <summary>Rolled-back devices not yet back on their previous version (the rollout keeps reading their state).</summary>
    public IReadOnlyList<RolloutDeviceRecord> RollbackInProgress() =>
        Status == RolloutStatus.RolledBack ? Devices.Where(d => d.Rollback == RollbackOutcome.InProgress).ToList() : [];

    /// <summary>One line of the rollout list.</summary>
    public RolloutSummary Summary()
    {
        var all = Counters();
        return new RolloutSummary(Spec.RolloutId, Spec.Target.Product, Spec.Target.Version, Status, CurrentWave + 1, WaveCount,
            all.Sum(w => w.Total), all.Sum(w => w.Succeeded), all.Sum(w => w.Failed), UpdatedAt);
    }

    /// <summary>
    /// The next rollout-level decision while Running (pure: the actor persists it and asks again): auto-pause on the
    /// error threshold, pause when a wave finished below its success threshold, threshold met, next wave after the
    /// soak time, completion. Null when nothing is due.
    /// </summary>
    public IRolloutEvent? NextDecision(DateTimeOffset now)
    {
        if (Status != RolloutStatus.Running) return null;
        var counters = Counters();
        for (var w = 0; w <= CurrentWave; w++)
        {
            var c = counters[w];
            // Devices that are failing but still retrying count with those that failed: a wave whose devices cannot
            // install pauses the rollout even though no device is ever given up.
            var troubled = c.Failed + c.Failing;
            var unacknowledged = troubled - AcknowledgedFailures[w];
            if (unacknowledged > 0 && troubled > Spec.ErrorThreshold * c.Total)
                return new RolloutPaused("system",
                    $"wave {w + 1}: {troubled} of {c.Total} devices failed or are failing ({c.Failed} failed, {c.Failing} failing after " +
                    $"{Spec.FailingAfterAttempts} or more failed attempts and still retrying), above the error threshold of {Spec.ErrorThreshold:P0}; " +
                    "inspect the failures (orch rollout show), then orch rollout resume, retry, abort or rollback", now);
        }
        var cur = counters[CurrentWave];
        // Failures an operator acknowledged (by resuming) leave the denominator: resuming means "go on without them".
        var needed = (int)Math.Ceiling(Spec.SuccessThreshold * (cur.Total - AcknowledgedFailures[CurrentWave]) - 1e-9);
        var finished = cur.Pending == 0 && cur.InProgress == 0;
        var last = CurrentWave == WaveCount - 1;
        if (cur.Succeeded >= needed)
        {
            if (last)
            {
                var everything = counters.All(x => x.Pending == 0 && x.InProgress == 0);
                return everything && counters.Sum(x => x.Total) > 0 ? new RolloutCompleted(now) : null;
            }
            if (ThresholdMetAt is null) return new RolloutWaveThresholdMet(CurrentWave, now);
            return now - ThresholdMetAt.Value >= TimeSpan.FromSeconds(Spec.SoakSeconds) ? new RolloutWaveStarted(CurrentWave + 1, now) : null;
        }
        if (finished && cur.Total > 0)
            return new RolloutPaused("system",
                $"wave {CurrentWave + 1} finished with {cur.Succeeded} of {cur.Total} devices succeeded, below the success threshold of " +
                $"{Spec.SuccessThreshold:P0}; orch rollout retry and resume, or abort", now);
        return null;
    }

    /// <summary>Pending devices that may be assigned now (waves up to the current one, in order), at most <paramref name="max"/>.</summary>
    public IReadOnlyList<string> NextToAssign(int max) =>
        max <= 0 ? [] : Devices.Where(d => d.Outcome == RolloutDeviceOutcome.Pending && d.Wave <= CurrentWave).Take(max).Select(d => d.DeviceId).ToList();

    /// <summary>
    /// True when <paramref name="deviceId"/> holds an unfinished assignment for longer than the spec's device timeout.
    /// An assignment recovered from a snapshot written before assignment times were recorded never times out.
    /// </summary>
    public bool TimedOut(string deviceId, DateTimeOffset now) =>
        Spec.DeviceTimeoutSeconds > 0 && Find(deviceId) is { Outcome: RolloutDeviceOutcome.InProgress, AssignedAt: { } at }
        && now - at >= TimeSpan.FromSeconds(Spec.DeviceTimeoutSeconds);

    /// <summary>Devices with an unfinished assignment already counted as failing.</summary>
    public IReadOnlySet<string> Failing() =>
        Devices.Where(d => d.Outcome == RolloutDeviceOutcome.InProgress && d.FailingAttempts > 0).Select(d => d.DeviceId).ToHashSet(StringComparer.Ordinal);

    /// <summary>Devices with an unfinished assignment.</summary>
    public IReadOnlyList<string> InProgress() => Devices.Where(d => d.Outcome == RolloutDeviceOutcome.InProgress).Select(d => d.DeviceId).ToList();
}
