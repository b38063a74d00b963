using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// One rollout as a persistent state machine (behaviours Uncreated, Created, Running, Paused, Completed, Aborted,
/// RolledBack). It persists only its own decisions: the plan, each device's assignment and outcome, waves, pauses.
/// <para>
/// Progress is reconciled by re-reading device state, not by counting notifications: every
/// <see cref="RolloutSettings.PollInterval"/> the actor asks each device with an unfinished assignment for its
/// <see cref="DeviceState"/> (the device actor's own persisted state, folded from its journal) and persists an
/// outcome event the first time that state shows the target installed or the retry policy exhausted. We chose
/// this over following tagged events (EventsByTag) because the device tagger tags only assignment events with the
/// rollout id, completions and failures are not attributable without folding the whole device feed, and because a
/// re-read is naturally idempotent: after a crash (of this actor or the node) recovery restores the outcomes
/// already persisted and the next poll re-reads exactly the devices still in flight, so no completion is counted
/// twice or missed. The number of devices in flight is bounded by <see cref="RolloutSpec.MaxConcurrent"/>, which
/// bounds the cost of a poll.
/// </para>
/// Assignment order: ask the device's state (for the previous version), send AssignTarget, persist
/// <see cref="RolloutDeviceAssigned"/> after the device accepted. A crash in between leaves the device Pending here
/// with our target on the device; the next assignment pass re-sends the (idempotent) AssignTarget.
/// <para>
/// A pass talks to thousands of device actors and may take seconds on a large fleet, so a child
/// (<see cref="RolloutPassWorker"/>) runs it on a <see cref="PassInput"/> captured from the state and reports back only
/// facts (events): this actor only decides and persists, and keeps answering views and operator commands meanwhile. The facts stay true whatever was decided in between (a device
/// that accepted an assignment holds it even if the rollout was paused meanwhile; abort and rollback then reach it
/// through the next pass), and every rollout-level decision is taken on the actor's thread after they are applied.
/// </para>
/// </summary>
public sealed class RolloutActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>Prefix of the persistence id.</summary>
    public const string PersistenceIdPrefix = "rollout-";

    private const string TickKey = "tick";
    private readonly string _rolloutId;
    private readonly IActorRef _passWorker;
    private readonly RolloutSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IRolloutEvent> _unpersisted = [];
    private RolloutState? _state;
    private long _lastSnapshot;
    private DateTimeOffset _nextJoinCheck = DateTimeOffset.MinValue;
    private bool _claimsReleased;
    private static readonly IReadOnlySet<string> NoDevices = new HashSet<string>();
    private bool _passRunning;
    private int _observeCursor;
    private bool _tickWanted;
    private readonly RolloutChannelSync _channelSync;

    /// <summary>Props of the actor of <paramref name="rolloutId"/>; its parent must be the <see cref="RolloutCoordinator"/>.</summary>
    /// <param name="rolloutId">Rollout id.</param>
    /// <param name="devices">Device shard region or proxy.</param>
    /// <param name="registry">Device registry read model.</param>
    /// <param name="settings">Tunables.</param>
    /// <param name="channels">Channel directory told about every status change (RolloutChannelSync); null: none.</param>
    public static Props Props(string rolloutId, IActorRef devices, IActorRef registry, RolloutSettings settings, IActorRef? channels = null) =>
        Akka.Actor.Props.Create(() => new RolloutActor(rolloutId, devices, registry, settings, channels));

    /// <summary>Use <see cref="Props"/>.</summary>
    public RolloutActor(string rolloutId, IActorRef devices, IActorRef registry, RolloutSettings settings, IActorRef? channels)
    {
        _channelSync = new RolloutChannelSync(channels, settings);
        _rolloutId = rolloutId;
        _passWorker = Context.ActorOf(RolloutPassWorker.Props(rolloutId, devices, registry, settings), "pass");
        _settings = settings;
        PersistenceId = PersistenceIdPrefix + rolloutId;

        Recover<SnapshotOffer>(o =>
        {
            _state = RolloutState.FromSnapshot((RolloutSnapshot)o.Snapshot);
            _lastSnapshot = o.Metadata.SequenceNr;
        });
        Recover<RolloutCreated>(e => _state = RolloutState.Create(e));
        Recover<IRolloutEvent>(e => _state?.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            Context.Parent.Tell(new RolloutClaims(_rolloutId, Claims()));
            if (_state is null) return;
            PublishSummary();
            _channelSync.Send(_state.Spec, _state.Status, Self);
            BecomeFor(_state.Status);
            ScheduleTick(TimeSpan.Zero);
        });
        Uncreated();
    }

    /// <inheritdoc />
    public override string PersistenceId { get; }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    private RolloutState State => _state!;
    private DateTimeOffset Now => _settings.Clock.GetUtcNow();

    private IReadOnlyList<string> Claims() => _state is { IsActive: true } s ? s.Devices.Select(d => d.DeviceId).ToList() : [];

    // ---- behaviours ----

    private void Uncreated()
    {
        Command<StartRollout>(c =>
        {
            var created = new RolloutCreated(c.Spec, RolloutState.Plan(c.Spec, c.DeviceIds), Now);
            Persist(created, e =>
            {
                _state = RolloutState.Create(e);
                PublishSummary();
                c.ReplyTo.Tell(State.View());
                _channelSync.Send(State.Spec, State.Status, Self);
                BecomeFor(State.Status);
                ScheduleTick(TimeSpan.Zero);
            });
        });
        Command<IRolloutCommand>(c => Sender.Tell(new RolloutRejected(_rolloutId, "not_found", "", $"Rollout '{_rolloutId}' does not exist.")));
        Common();
    }

    private void BecomeFor(RolloutStatus status)
    {
        switch (status)
        {
            case RolloutStatus.Created: Become(Created); break;
            case RolloutStatus.Running: Become(Running); break;
            case RolloutStatus.Paused: Become(Paused); break;
            case RolloutStatus.Completed: Become(Completed); break;
            case RolloutStatus.Aborted: Become(Aborted); break;
            default: Become(RolledBack); break;
        }
    }

    private void Created()
    {
        Command<PauseRollout>(c => Decide(new RolloutPaused(c.Operator, c.Reason, Now)));
        Command<AbortRollout>(c => Decide(new RolloutAborted(c.Operator, c.Reason, Now)));
        Active();
    }

    private void Running()
    {
        Command<PauseRollout>(c => Decide(new RolloutPaused(c.Operator, c.Reason, Now)));
        Command<AbortRollout>(c => Decide(new RolloutAborted(c.Operator, c.Reason, Now)));
        Command<RollbackRollout>(Rollback);
        Command<RetryFailedDevices>(RetryFailed);
        Active();
    }

    private void Paused()
    {
        Command<ResumeRollout>(c => Decide(new RolloutResumed(c.Operator, Now)));
        Command<AbortRollout>(c => Decide(new RolloutAborted(c.Operator, c.Reason, Now)));
        Command<RollbackRollout>(Rollback);
        Command<RetryFailedDevices>(RetryFailed);
        Active();
    }

    private void Completed()
    {
        Command<RollbackRollout>(Rollback);
        Command<RetryFailedDevices>(RetryFailed);
        Active();
    }

    private void Aborted()
    {
        Command<RollbackRollout>(Rollback);
        Active();
    }

    private void RolledBack() => Active();

    private void Active()
    {
        Command<GetRollout>(_ => Sender.Tell(State.View()));
        Command<IRolloutCommand>(c => Sender.Tell(new RolloutRejected(_rolloutId, "invalid_state", "",
            $"{c.GetType().Name} is not possible while rollout '{_rolloutId}' is {State.Status}. " + Allowed(State.Status))));
        Command<Tick>(_ => StartPass());
        Command<PassCompleted>(OnPassCompleted);
        Common();
    }

    private static string Allowed(RolloutStatus s) => s switch
    {
        RolloutStatus.Created => "Allowed now: orch rollout pause or abort.",
        RolloutStatus.Running => "Allowed now: orch rollout pause, abort, rollback or retry.",
        RolloutStatus.Paused => "Allowed now: orch rollout resume, abort, rollback or retry.",
        RolloutStatus.Completed => "Allowed now: orch rollout rollback or retry.",
        RolloutStatus.Aborted => "Allowed now: orch rollout rollback.",
        _ => "It is finished; create a new rollout (orch rollout create).",
    };

    private void Common()
    {
        Command<RolloutChannelSync.Result>(r =>
        {
            _channelSync.Settle(r, _state?.Spec, _state?.Status, Self, Timers);
            if (_state is { CommandsPending: true }) ScheduleTick(TimeSpan.Zero); // a rollback's commands waited for this answer
        });
        Command<RolloutChannelSync.Retry>(_ =>
        {
            if (_state is not null) _channelSync.Send(_state.Spec, _state.Status, Self);
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "Snapshot of {0} failed; recovery replays more events", PersistenceId));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "Deleting old snapshots of {0} failed", PersistenceId));
    }

    // ---- operator commands ----

    private void Rollback(RollbackRollout c) => Decide(new RolloutRolledBack(c.Operator, c.Reason, c.Versions, Now));

    private void RetryFailed(RetryFailedDevices c)
    {
        var failed = State.Devices.Where(d => d.Outcome == RolloutDeviceOutcome.Failed).Select(d => d.DeviceId).ToList();
        if (failed.Count == 0)
        {
            Sender.Tell(new RolloutRejected(_rolloutId, "no_failed_devices", "", $"Rollout '{_rolloutId}' has no failed devices to retry."));
            return;
        }
        Decide(new RolloutFailedDevicesRetried(c.Operator, failed, Now));
    }

    /// <summary>Applies and persists an operator decision, then answers with the view (after the write).</summary>
    private void Decide(IRolloutEvent e)
    {
        var replyTo = Sender;
        Emit(e);
        Flush();
        DeferAsync(e, _ => replyTo.Tell(State.View()));
        ScheduleTick(TimeSpan.Zero);
    }

    // ---- persistence helpers ----

    // Events are applied when decided and persisted at the end of the handler. Persist stashes every later command
    // until the write completes, and a failed write stops the actor (recovery then rebuilds from what was written),
    // so nobody ever observes a state that is not durable.
    private void Emit(IRolloutEvent e)
    {
        State.Apply(e);
        _unpersisted.Add(e);
    }

    private void Flush()
    {
        if (_unpersisted.Count == 0) return;
        var batch = _unpersisted.ToList();
        _unpersisted.Clear();
        PersistAll(batch, _ => { });
        DeferAsync(batch, _ =>
        {
            // After the write: the channel moves, and lists show, only a status that recovery would restore.
            PublishSummary();
            _channelSync.Send(State.Spec, State.Status, Self);
            // A snapshot holds every device record, so on a large rollout it is taken at most once per device's worth of
            // events: the write cost per event stays constant instead of growing with the fleet.
            if (LastSequenceNr - _lastSnapshot >= Math.Max(_settings.SnapshotEvery, State.DeviceCount))
            {
                _lastSnapshot = LastSequenceNr;
                SaveSnapshot(State.ToSnapshot());
            }
        });
        if (!State.IsActive && !_claimsReleased)
        {
            _claimsReleased = true;
            Context.Parent.Tell(new ReleaseClaims(_rolloutId));
        }
        BecomeFor(State.Status);
    }

    // The coordinator answers rollout lists from the summaries its children publish, so a list never waits on (or
    // times out against) a rollout busy with a pass. Published after every durable change, before any reply to the
    // operator, so a list sent after that reply already sees the change.
    private void PublishSummary() => Context.Parent.Tell(State.Summary());

    private void ScheduleTick(TimeSpan delay) => Timers.StartSingleTimer(TickKey, Tick.Instance, delay);

    // ---- the periodic pass ----

    private void StartPass()
    {
        if (_passRunning)
        {
            _tickWanted = true; // e.g. an operator decision during a pass: run again as soon as this one reports
            return;
        }
        if (!State.CommandsPending && State.IsActive)
        {
            // Pure decisions need no device I/O: take them here, before capturing what the pass works on.
            if (State.Status == RolloutStatus.Created && (State.Spec.StartAt is null || Now >= State.Spec.StartAt))
                Emit(new RolloutStarted(Now));
            if (State.Started) DecideProgress();
            Flush();
        }
        var input = Capture();
        if (input is null) return;
        _passRunning = true;
        _tickWanted = false;
        _passWorker.Tell(input);
    }

    private void OnPassCompleted(PassCompleted pass)
    {
        _passRunning = false;
        if (pass.JoinChecked) _nextJoinCheck = Now + _settings.JoinCheckInterval;
        foreach (var e in pass.Facts) Emit(e);
        if (State.Started) DecideProgress();
        Flush();
        if (_tickWanted) ScheduleTick(TimeSpan.Zero);
        else if (State.IsActive || State.CommandsPending || State.RollbackInProgress().Count > 0) ScheduleTick(_settings.PollInterval);
    }

    /// <summary>What the next pass works on, read on the actor's thread (the pass itself never touches the state).</summary>
    private PassInput? Capture()
    {
        if (State.CommandsPending)
        {
            var rollback = State.Status == RolloutStatus.RolledBack;
            // Devices are told to move back once the channel directory has answered the rollback (recorded, or failed to
            // answer in time): a device checking in meanwhile would be judged against a channel that still shows the
            // rolled-back release.
            if (rollback && _channelSync.Awaiting(RolloutStatus.RolledBack)) return null;
            var targets = State.Devices.Where(d => rollback ? d.Outcome != RolloutDeviceOutcome.Pending : d.Outcome == RolloutDeviceOutcome.InProgress)
                .ToList();
            return new PassInput(State.Spec, targets, rollback, State.RollbackVersions, [], NoDevices, [], false, Context.Parent, NoDevices, NoDevices);
        }
        if (State.RollbackInProgress() is { Count: > 0 } restoring)
            return new PassInput(State.Spec, [], false, [], [], NoDevices, [], false, Context.Parent, NoDevices, NoDevices, restoring);
        if (!State.IsActive) return null;
        var inFlight = State.Started ? State.InProgress() : [];
        var observe = Rotate(inFlight, _settings.MaxObservePerPass);
        var timedOut = observe.Where(id => State.TimedOut(id, Now)).ToHashSet(StringComparer.Ordinal);
        var mayAssign = State.Started && State.Status == RolloutStatus.Running && (State.Spec.Window is null || State.Spec.Window.Contains(Now));
        var toAssign = mayAssign ? State.NextToAssign(Math.Min(State.Spec.MaxConcurrent - inFlight.Count, _settings.MaxAssignPerPass)) : [];
        var joinDue = Now >= _nextJoinCheck;
        // The set of every device id is only needed to filter late joiners: build it on those passes only.
        var known = joinDue ? State.Devices.Select(d => d.DeviceId).ToHashSet(StringComparer.Ordinal) : NoDevices;
        return new PassInput(State.Spec, [], false, [], observe, timedOut, toAssign, joinDue, Context.Parent, known, State.Failing());
    }

    /// <summary>The next <paramref name="max"/> of <paramref name="ids"/> after the previous pass's, wrapping around.</summary>
    private IReadOnlyList<string> Rotate(IReadOnlyList<string> ids, int max)
    {
        if (ids.Count <= max) return ids;
        var start = _observeCursor % ids.Count;
        _observeCursor = start + max;
        return Enumerable.Range(start, max).Select(i => ids[i % ids.Count]).ToList();
    }

    private void DecideProgress()
    {
        // Each decision may enable the next (threshold met -> next wave when no soak); bounded by the number of waves.
        for (var i = 0; i < 2 * State.WaveCount + 2 && State.NextDecision(Now) is { } e; i++) Emit(e);
    }

    /// <summary>Self-sent; local only.</summary>
    private sealed class Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }
}
