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
/// A pass talks to thousands of device actors and may take seconds on a large fleet, so it runs off the actor's
/// thread on a <see cref="PassInput"/> captured from the state and reports back only facts (events): the actor keeps
/// answering views and operator commands meanwhile. The facts stay true whatever was decided in between (a device
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
    private readonly IActorRef _devices;
    private readonly IActorRef _registry;
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
        _devices = devices;
        _registry = registry;
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
                c.ReplyTo.Tell(State.View());
                _channelSync.Send(State.Spec, State.Status, Self);
                BecomeFor(State.Status);
                ScheduleTick(TimeSpan.Zero);
            });
        });
        Command<IRolloutCommand>(c => Sender.Tell(new RolloutRejected(_rolloutId, "not_found", "", $"Rollout '{_rolloutId}' does not exist.")));
        Command<GetSummary>(_ => Sender.Tell(NotCreated.Instance));
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
        Command<GetSummary>(_ => Sender.Tell(State.Summary()));
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
            // After the write: the channel moves only for a status that recovery would restore.
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
        var self = Self;
        RunPass(input).ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) return t.Result;
            _log.Warning(t.Exception?.GetBaseException(), "Rollout {0}: pass failed; retrying at the next poll", _rolloutId);
            return new PassCompleted([], input.JoinDue);
        }, TaskScheduler.Default).PipeTo(self);
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

    private async Task<PassCompleted> RunPass(PassInput input)
    {
        var facts = new List<IRolloutEvent>();
        if (input.CommandTargets.Count > 0 || input.Rollback)
        {
            await DeliverCommands(input, facts);
            return new PassCompleted(facts, false);
        }
        if (input.Restoring is { Count: > 0 })
        {
            await Stage("observing rolled-back devices", () => ObserveRollback(input, facts));
            return new PassCompleted(facts, false);
        }
        // Stages fail independently, so what one established (an accepted assignment) is not lost to another's timeout.
        await Stage("observing devices", () => Observe(input, facts));
        await Stage("assigning devices", () => Assign(input, facts));
        if (input.JoinDue) await Stage("looking for late joiners", () => Join(input, facts));
        return new PassCompleted(facts, input.JoinDue);
    }

    private async Task Stage(string what, Func<Task> run)
    {
        try
        {
            await run();
        }
        catch (Exception ex)
        {
            _log.Warning(ex, "Rollout {0}: {1} failed; retrying at the next poll", _rolloutId, what);
        }
    }

    private void DecideProgress()
    {
        // Each decision may enable the next (threshold met -> next wave when no soak); bounded by the number of waves.
        for (var i = 0; i < 2 * State.WaveCount + 2 && State.NextDecision(Now) is { } e; i++) Emit(e);
    }

    private async Task<T?> AskDevice<T>(IDeviceCommand command) where T : class
    {
        try
        {
            var answer = await _devices.Ask<object>(command, _settings.AskTimeout);
            if (answer is DeviceCommandRejected r && typeof(T) != typeof(DeviceCommandRejected))
                throw new DeviceRejection(r);
            return answer as T;
        }
        catch (AskTimeoutException)
        {
            return null;
        }
    }

    private async Task Observe(PassInput input, List<IRolloutEvent> facts)
    {
        var target = input.Spec.Target;
        var ids = input.InProgress;
        var states = await Task.WhenAll(ids.Select(id => AskDevice<DeviceState>(new GetDeviceState(id))));
        for (var i = 0; i < ids.Count; i++)
        {
            if (states[i] is not { } s) continue; // unreachable now; read again next poll
            if (s.InstalledVersionId == target.VersionId && s.Work is null)
                facts.Add(new RolloutDeviceSucceeded(s.DeviceId, Now));
            else if (input.TimedOut.Contains(s.DeviceId))
            {
                var seen = s.LastSeen is { } at ? $"last seen {at:u}" : "never checked in";
                var reason = $"did not install {target.Version} within {TimeSpan.FromSeconds(input.Spec.DeviceTimeoutSeconds)} of its assignment ({seen})";
                if (await Cancel(s.DeviceId, reason, giveUp: true)) facts.Add(new RolloutDeviceFailed(s.DeviceId, reason, Now));
            }
            else if (s.Target is null || s.Target.RolloutId != _rolloutId || s.Target.VersionId != target.VersionId)
                facts.Add(new RolloutDeviceFailed(s.DeviceId,
                    $"assignment removed outside this rollout (device now targets {(s.Target is null ? "nothing" : $"{s.Target.Version} of {s.Target.RolloutId}")})", Now));
            else if (input.Spec.MaxAttemptsPerDevice > 0 && s.FailedAttempts >= input.Spec.MaxAttemptsPerDevice)
            {
                // Stop the device retrying before counting it failed; if the cancel does not get through, try again next poll.
                var reason = $"gave up after {s.FailedAttempts} failed attempts (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})";
                if (await Cancel(s.DeviceId, reason, giveUp: true)) facts.Add(new RolloutDeviceFailed(s.DeviceId, reason, Now));
            }
            else if (s.FailedAttempts >= input.Spec.FailingAfterAttempts && !input.Failing.Contains(s.DeviceId))
            {
                // Counted once when it crosses the threshold; it keeps its assignment and retries until it succeeds.
                facts.Add(new RolloutDeviceFailing(s.DeviceId, s.FailedAttempts,
                    $"failing: {s.FailedAttempts} failed attempts, still retrying (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})", Now));
            }
        }
    }

    private async Task<bool> Cancel(string deviceId, string reason, bool giveUp = false)
    {
        try { return await AskDevice<DeviceCommandAccepted>(new CancelAssignment(deviceId, "rollout:" + _rolloutId, reason, giveUp)) is not null; }
        catch (DeviceRejection) { return true; } // nothing to cancel there
    }

    private async Task Assign(PassInput input, List<IRolloutEvent> facts)
    {
        if (input.ToAssign.Count == 0) return;
        var results = await Task.WhenAll(input.ToAssign.Select(id => AssignOne(input.Spec, id)));
        foreach (var e in results)
            if (e is not null) facts.Add(e);
    }

    private async Task<IRolloutEvent?> AssignOne(RolloutSpec spec, string deviceId)
    {
        var t = spec.Target;
        try
        {
            var s = await AskDevice<DeviceState>(new GetDeviceState(deviceId));
            if (s is null) return null;
            if (s.Product is not null && s.Product != t.Product)
                return new RolloutDeviceFailed(deviceId, $"device runs product '{s.Product}', not '{t.Product}'", Now);
            // Already ours (a crash after the device accepted): the installed version is the previous one unless it already finished.
            var previous = s.Target?.RolloutId == _rolloutId && s.InstalledVersionId == t.VersionId ? 0 : s.InstalledVersionId;
            var ok = await AskDevice<DeviceCommandAccepted>(new AssignTarget(deviceId, t.Product, t.Version, t.VersionId, t.ManifestPath, _rolloutId,
                spec.BandwidthBytesPerSecond));
            return ok is null ? null : new RolloutDeviceAssigned(deviceId, previous, Now);
        }
        catch (DeviceRejection r)
        {
            return new RolloutDeviceFailed(deviceId, $"device refused the assignment: {r.Rejected.Message}", Now);
        }
    }

    private async Task Join(PassInput input, List<IRolloutEvent> facts)
    {
        DeviceList list;
        try { list = await RegistrySelection.AllAsync(_registry, new QueryDevices(null, null, null, null, _settings.RegistryQueryLimit), _settings.AskTimeout); }
        catch (RegistryLimitExceededException ex)
        {
            // Joining from a truncated list would silently leave devices out; join nobody and say why (every join check).
            _log.Error("Rollout {0}: late joiners not checked: {1}", _rolloutId, ex.Message);
            return;
        }
        var spec = input.Spec;
        var fresh = list.Devices
            .Where(d => d.Product == spec.Target.Product && spec.Selector.Matches(d) && !input.Known.Contains(d.DeviceId)
                        && Messages.Channels.ChannelRules.ChannelOf(d.Tags) == spec.Channel)
            .Select(d => d.DeviceId).ToList();
        if (fresh.Count == 0) return;
        var granted = await input.Coordinator.Ask<DevicesClaimed>(new ClaimDevices(_rolloutId, fresh), _settings.AskTimeout);
        if (granted.DeviceIds.Count > 0) facts.Add(new RolloutDevicesJoined(granted.DeviceIds, Now));
    }

    private async Task DeliverCommands(PassInput input, List<IRolloutEvent> facts)
    {
        var rollback = input.Rollback;
        var t = input.Spec.Target;
        var targets = input.CommandTargets;
        var versions = input.RollbackVersions.ToDictionary(v => v.VersionId);
        var done = await Task.WhenAll(targets.Select(async d =>
        {
            try
            {
                // The operator's rollback is the downgrade authorization: the device's directive carries it, so its agent
                // installs the previous version below its floor (and only that version, only from this rollout).
                if (rollback && versions.TryGetValue(d.PreviousVersionId, out var v))
                    return await AskDevice<DeviceCommandAccepted>(new AssignTarget(d.DeviceId, t.Product, v.Version, v.VersionId, v.ManifestPath, _rolloutId,
                        input.Spec.BandwidthBytesPerSecond, AuthorizeDowngrade: true)) is not null;
                // Abort, or rollback of a device that had nothing (known) installed: cancel, but only our own assignment.
                var s = await AskDevice<DeviceState>(new GetDeviceState(d.DeviceId));
                if (s is null) return false;
                if (s.Target?.RolloutId != _rolloutId) return true;
                return await Cancel(d.DeviceId, rollback ? "rollout rolled back" : "rollout aborted");
            }
            catch (DeviceRejection)
            {
                return true; // the device refuses (e.g. other product): nothing to undo there
            }
        }));
        // Abort is incremental (a cancelled device leaves InProgress); rollback re-sends to all until every device acknowledged.
        if (!rollback)
            for (var i = 0; i < targets.Count; i++)
                if (done[i]) facts.Add(new RolloutDeviceFailed(targets[i].DeviceId, "assignment cancelled by abort", Now));
        if (done.All(x => x)) facts.Add(new RolloutCommandsDelivered(targets.Count, Now));
    }

    /// <summary>
    /// Reads each rolled-back device's own state and records, once, that it is back on its previous version, or that it
    /// will not get there (retry policy exhausted: its assignment is cancelled; or the assignment was replaced).
    /// </summary>
    private async Task ObserveRollback(PassInput input, List<IRolloutEvent> facts)
    {
        var devices = input.Restoring!;
        var states = await Task.WhenAll(devices.Select(d => AskDevice<DeviceState>(new GetDeviceState(d.DeviceId))));
        for (var i = 0; i < devices.Count; i++)
        {
            if (states[i] is not { } s) continue;
            var previous = devices[i].PreviousVersionId;
            if (s.InstalledVersionId == previous && s.Work is null)
                facts.Add(new RolloutDeviceRestored(s.DeviceId, Now));
            else if (s.Target is null || s.Target.RolloutId != _rolloutId || s.Target.VersionId != previous)
                facts.Add(new RolloutDeviceRestoreFailed(s.DeviceId,
                    $"rollback assignment removed outside this rollout (device now targets {(s.Target is null ? "nothing" : $"{s.Target.Version} of {s.Target.RolloutId}")})", Now));
            // Without a cap (MaxAttemptsPerDevice 0, the default) a device retries its restore until it succeeds.
            else if (input.Spec.MaxAttemptsPerDevice > 0 && s.FailedAttempts >= input.Spec.MaxAttemptsPerDevice)
            {
                var reason = $"gave up restoring version ID {previous} after {s.FailedAttempts} failed attempts (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})";
                if (await Cancel(s.DeviceId, reason)) facts.Add(new RolloutDeviceRestoreFailed(s.DeviceId, reason, Now));
            }
        }
    }

    /// <summary>What one pass works on, captured on the actor's thread.</summary>
    private sealed record PassInput(
        RolloutSpec Spec,
        IReadOnlyList<RolloutDeviceRecord> CommandTargets,
        bool Rollback,
        IReadOnlyList<RollbackVersion> RollbackVersions,
        IReadOnlyList<string> InProgress,
        IReadOnlySet<string> TimedOut,
        IReadOnlyList<string> ToAssign,
        bool JoinDue,
        IActorRef Coordinator,
        IReadOnlySet<string> Known,
        IReadOnlySet<string> Failing,
        IReadOnlyList<RolloutDeviceRecord>? Restoring = null);

    /// <summary>Facts a pass established, applied on the actor's thread; local only.</summary>
    private sealed record PassCompleted(IReadOnlyList<IRolloutEvent> Facts, bool JoinChecked) : INoSerializationVerificationNeeded;

    /// <summary>Self-sent; local only.</summary>
    private sealed class Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    private sealed class DeviceRejection(DeviceCommandRejected rejected) : Exception(rejected.Message)
    {
        public DeviceCommandRejected Rejected { get; } = rejected;
    }
}
