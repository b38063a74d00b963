using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors;

/// <summary>
/// One device's persistent repair/upgrade state machine. Decisions come from <see cref="DeviceStateMachine"/>;
/// this actor persists them, replies after the write, snapshots every <see cref="DeviceActorSettings.SnapshotEvery"/>
/// events, marks the device Offline after <see cref="DeviceActorSettings.OfflineAfter"/> of silence and then
/// passivates itself (sharding's own idle passivation is off, see <see cref="Hosting.DeviceActorsHosting"/>).
/// Heartbeats (check-ins that change nothing but LastSeen) are persisted at most every
/// <see cref="DeviceActorSettings.LastSeenPersistInterval"/>; the state held here is the persisted one (so its
/// LastSeen may lag by that interval) except for <see cref="DeviceState.LastRequestSequence"/>, which every accepted
/// device request advances, while the silence timer is re-armed by every check-in, persisted or not.
/// Behaviours: <c>Settled</c> (Unknown/Idle/Completed: reports are refused here) and <c>Open</c> (working or Offline:
/// every command goes to the state machine, which accepts reports of work and resumes an Offline device's previous
/// status on its first traffic).
/// A settled actor with nothing in flight passivates <see cref="DeviceActorSettings.IdlePassivateAfter"/> after its last
/// message (when set): unless the journal already holds everything it keeps in memory (its last device request was
/// journaled, see <see cref="JournalHoldsContactTolerance"/>), it first saves a <see cref="DeviceSnapshot"/> of it (the
/// request sequence high-water mark, when it last heard from the device), so the next incarnation recovers from the
/// journal or that snapshot and answers exactly as this one would, and it leaves its offline deadline with the node's
/// <see cref="DeviceSilenceWatch"/>, whose <see cref="CheckSilence"/> wakes it when the deadline is due. An actor of a
/// device that never sent a request passivates <see cref="DeviceActorSettings.UnheardPassivateAfter"/> after its last
/// message without a snapshot (the journal holds all it knows), so bulk registration does not leave a fleet of live actors.
/// The device's last contact is the later of what this actor heard and the node's sightings
/// (<see cref="IDeviceSightings"/>: check-ins the gateways answered without it): the device goes Offline only when
/// both are <see cref="DeviceActorSettings.OfflineAfter"/> old.
/// Every journaled event is marked with the node's <see cref="IDeviceJournalMarks"/> before the reply, so no gateway's
/// idle fast path answers this device from a registry row that has not folded an event this actor acknowledged.
/// </summary>
public sealed class DeviceActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>Prefix of the persistence id; the registry strips it to get the device id.</summary>
    public const string PersistenceIdPrefix = "device-";

    /// <summary>
    /// How much later than the journaled last-seen (the gateway's receipt time of a journaled request) this actor's own
    /// reading of the same contact may be for the journal to count as holding it: an idle actor then passivates without
    /// a snapshot, and its next incarnation dates the contact at most this much earlier (its offline deadline moves
    /// earlier by at most this, against an offline timeout of minutes). A later unjournaled request (a heartbeat) is
    /// never this close, so it is always snapshotted.
    /// </summary>
    public static readonly TimeSpan JournalHoldsContactTolerance = TimeSpan.FromSeconds(1);

    private const string SilenceTimerKey = "silence";
    private const string IdleTimerKey = "idle";
    private readonly DeviceActorSettings _settings;
    private readonly IActorRef? _silenceWatch;
    private readonly IDeviceSightings? _sightings;
    private readonly IDeviceJournalMarks? _marks;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Random _random = new();
    private DeviceState _state;
    private long _lastSnapshotSequenceNr;
    // The snapshot store runs saves concurrently, so a save issued earlier can commit after the delete that follows a
    // later one and survive it. One save in flight at a time; a snapshot that falls due meanwhile is taken afterwards.
    private bool _snapshotInFlight;
    private bool _snapshotDue;
    private Behaviour _behaviour = Behaviour.Settled;
    private long _silenceSince;
    // Wall-clock time of the last device request (journaled LastSeen lags behind idle check-ins); kept in snapshots.
    private DateTimeOffset? _lastHeard;
    // What the last saved snapshot holds; an idle actor passivates only when that is everything it has in memory. The
    // state changes only by events (the sequence number) and by the request sequence mark, so those two identify it
    // without keeping a second copy of the state alive.
    private (long SequenceNr, long RequestSequence, DateTimeOffset? LastHeard) _snapshotted;
    // True while the request sequence high-water mark is one no journaled event carries (a request that journaled
    // nothing advanced it); recovering from the journal alone would then accept that request once more.
    private bool _sequenceOnlyInMemory;
    private bool _passivateAfterSnapshot;
    // Highest snapshot sequence number saved or recovered; a save at that number replaces it, so only a save above it
    // leaves older snapshots to delete (and an idle actor waits for that delete before it stops).
    private long _savedSnapshotSequenceNr;
    private int _deletesInFlight;

    /// <summary>Props for the actor of <paramref name="deviceId"/>.</summary>
    /// <param name="deviceId">Validated device id (the sharding entity id).</param>
    /// <param name="settings">Tunables.</param>
    /// <param name="silenceWatch">The node's <see cref="DeviceSilenceWatch"/>; without one an idle actor with an offline
    /// deadline to keep stays live.</param>
    /// <param name="sightings">The node's sightings of devices answered without their actors; none: only what the actor heard counts.</param>
    /// <param name="marks">Where journaled events are marked for the idle fast path; none: no fast path reads this device's rows.</param>
    public static Props Props(string deviceId, DeviceActorSettings settings, IActorRef? silenceWatch = null, IDeviceSightings? sightings = null,
        IDeviceJournalMarks? marks = null) =>
        Akka.Actor.Props.Create(() => new DeviceActor(deviceId, settings, silenceWatch, sightings, marks));

    /// <summary>Creates the actor; use <see cref="Props"/>.</summary>
    /// <param name="deviceId">Device id.</param>
    /// <param name="settings">Tunables.</param>
    /// <param name="silenceWatch">The node's silence watch, if any.</param>
    /// <param name="sightings">The node's sightings, if any.</param>
    /// <param name="marks">The node's journal marks, if any.</param>
    public DeviceActor(string deviceId, DeviceActorSettings settings, IActorRef? silenceWatch, IDeviceSightings? sightings, IDeviceJournalMarks? marks)
    {
        _settings = settings;
        _silenceWatch = silenceWatch;
        _sightings = sightings;
        _marks = marks;
        _state = DeviceState.Initial(deviceId);
        PersistenceId = PersistenceIdPrefix + deviceId;

        Recover<SnapshotOffer>(offer =>
        {
            (_state, _lastHeard) = offer.Snapshot switch
            {
                DeviceSnapshot s => (s.State, s.LastHeard),
                _ => ((DeviceState)offer.Snapshot, null),
            };
            _lastSnapshotSequenceNr = offer.Metadata.SequenceNr;
            _snapshotted = (offer.Metadata.SequenceNr, _state.LastRequestSequence, _lastHeard);
            _savedSnapshotSequenceNr = offer.Metadata.SequenceNr;
        });
        Recover<IDeviceEvent>(e => _state = DeviceStateMachine.Apply(_state, e, LastSequenceNr));
        Recover<RecoveryCompleted>(_ =>
        {
            BecomeFor(_state.Status);
            ArmSilenceTimer();
        });
        Settled();
    }

    /// <inheritdoc />
    public override string PersistenceId { get; }

    /// <inheritdoc />
    protected override void PreStart()
    {
        DeviceActorMetrics.ActorStarted();
        base.PreStart();
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        DeviceActorMetrics.ActorStopped();
        base.PostStop();
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    private void BecomeFor(DeviceStatus status)
    {
        var next = status == DeviceStatus.Offline || DeviceStateMachine.IsWorking(status) ? Behaviour.Open : Behaviour.Settled;
        // Become rebuilds the handler table; doing it on every event made it most of the per-event allocation,
        // and with 100k live actors that garbage is what the collector spends its pauses on.
        if (next == _behaviour) return;
        _behaviour = next;
        Become(next == Behaviour.Open ? Open : Settled);
    }

    private enum Behaviour { Settled, Open }

    private void Settled()
    {
        Command<ReportProgress>(c => RefuseReport(c));
        Command<ReportFailure>(c => RefuseReport(c));
        Command<ReportCompletion>(c => RefuseReport(c));
        Open();
    }

    // Settled is Open with reports refused in front.
    private void Open()
    {
        Command<IDeviceCommand>(Handle);
        Command<SilenceTimeout>(_ => OnSilence());
        Command<CheckSilence>(_ => OnCheckSilence());
        Command<RecoverDevice>(OnRecoverDevice);
        Command<IdleTimeout>(_ => OnIdle());
        Command<StopDevice>(_ => Context.Stop(Self));
        Command<SaveSnapshotSuccess>(s =>
        {
            if (s.Metadata.SequenceNr > _savedSnapshotSequenceNr)
            {
                _deletesInFlight++;
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
            }
            _savedSnapshotSequenceNr = Math.Max(_savedSnapshotSequenceNr, s.Metadata.SequenceNr);
            SnapshotSettled();
            ResumePassivation();
        });
        Command<SaveSnapshotFailure>(f =>
        {
            _log.Warning(f.Cause, "Snapshot of {0} at {1} failed; recovery replays more events", PersistenceId, f.Metadata.SequenceNr);
            _passivateAfterSnapshot = false;
            _snapshotted = default;
            SnapshotSettled();
        });
        Command<DeleteSnapshotsSuccess>(_ =>
        {
            _deletesInFlight--;
            ResumePassivation();
        });
        Command<DeleteSnapshotsFailure>(f =>
        {
            _log.Warning(f.Cause, "Deleting old snapshots of {0} failed", PersistenceId);
            _deletesInFlight--;
            ResumePassivation();
        });
    }

    private void RefuseReport(IDeviceCommand c)
    {
        // Still proof of life: a settled device that reports is online.
        ArmSilenceTimer();
        _lastHeard = DateTimeOffset.UtcNow;
        ArmIdleTimer();
        if (DeviceRequestSequence.RefuseReplay(c, _state.LastRequestSequence) is { } replayed)
        {
            Sender.Tell(replayed);
            return;
        }
        RememberSequence(c);
        Sender.Tell(new DeviceCommandRejected(c.DeviceId, "no_active_work",
            $"Device '{c.DeviceId}' sent {c.GetType().Name} but has no active work (status {_state.Status}); check in first."));
    }

    private void Handle(IDeviceCommand command)
    {
        if (DeviceStateMachine.IsDeviceTraffic(command) || !Timers.IsTimerActive(SilenceTimerKey)) ArmSilenceTimer();
        if (DeviceStateMachine.IsDeviceTraffic(command)) _lastHeard = DateTimeOffset.UtcNow;
        ArmIdleTimer();
        var outcome = DeviceStateMachine.Decide(_state, command, _settings, _random, DateTimeOffset.UtcNow);
        if (outcome.Events.Count == 0) RememberSequence(command);
        PersistThenReply(outcome, Sender);
    }

    // A request that journals nothing (a heartbeat, a refusal) still uses up its sequence number: the high-water mark
    // advances in memory and reaches the journal with the next event or snapshot. After a restart the mark is the
    // journaled one, so only such unjournaled requests since the last event can be accepted once more, and only within
    // the gateway's timestamp skew; each can at most repeat an idle check-in or a refusal, never count a failure
    // twice, because every accepted report is journaled with its sequence number.
    private void RememberSequence(IDeviceCommand command)
    {
        var seq = DeviceRequestSequence.Of(command);
        if (seq <= _state.LastRequestSequence) return;
        _state = _state with { LastRequestSequence = seq };
        _sequenceOnlyInMemory = true;
    }

    private void PersistThenReply(CommandOutcome outcome, IActorRef replyTo)
    {
        if (outcome.Events.Count == 0)
        {
            replyTo.Tell(outcome.Reply(_state));
            return;
        }
        var remaining = outcome.Events.Count;
        var sequenceReset = false;
        PersistAll(outcome.Events, e =>
        {
            _state = DeviceStateMachine.Apply(_state, e, LastSequenceNr);
            sequenceReset |= e is RequestSequenceReset;
            // Replaying the journal reaches the same mark when this event carries it (or resets it).
            if (e is RequestSequenceReset || DeviceRequestSequence.Of(e) == _state.LastRequestSequence) _sequenceOnlyInMemory = false;
            if (--remaining > 0) return;
            // Before the reply: once the command is acknowledged, no fast path may answer from a row without these events.
            _marks?.Journaled(_state.DeviceId, LastSequenceNr, sequenceReset);
            replyTo.Tell(outcome.Reply(_state));
            BecomeFor(_state.Status);
            if (LastSequenceNr - _lastSnapshotSequenceNr >= _settings.SnapshotEvery) TakeSnapshot();
        });
    }

    private void TakeSnapshot()
    {
        if (_snapshotInFlight)
        {
            _snapshotDue = true;
            return;
        }
        _snapshotInFlight = true;
        _snapshotDue = false;
        _lastSnapshotSequenceNr = LastSequenceNr;
        _snapshotted = (LastSequenceNr, _state.LastRequestSequence, _lastHeard);
        SaveSnapshot(new DeviceSnapshot(_state, _lastHeard));
    }

    private void ArmIdleTimer()
    {
        if (IdleAfter is { } after) Timers.StartSingleTimer(IdleTimerKey, IdleTimeout.Instance, after);
    }

    // Never heard from: no request sequence or contact time exists only in memory, so the journal alone recovers this
    // actor exactly and it may stop without a snapshot.
    private bool NeverHeard => _lastHeard is null && _state.LastSeen is null && _state.LastRequestSequence == 0;

    // How long a settled actor stays after its last message; null: until the offline timeout.
    private TimeSpan? IdleAfter
    {
        get
        {
            var idle = _settings.IdlePassivateAfter;
            var unheard = NeverHeard ? _settings.UnheardPassivateAfter : TimeSpan.Zero;
            if (idle > TimeSpan.Zero && unheard > TimeSpan.Zero) return idle < unheard ? idle : unheard;
            if (idle > TimeSpan.Zero) return idle;
            return unheard > TimeSpan.Zero ? unheard : null;
        }
    }

    // Passivates a settled actor once a snapshot holds everything it keeps in memory. Messages that arrive meanwhile are
    // answered first (the shard delivers them before its stop message, or buffers them and starts a new incarnation).
    private void OnIdle()
    {
        if (_behaviour != Behaviour.Settled || IdleAfter is null) return;
        if (Timers.IsTimerActive(IdleTimerKey)) return; // a message arrived since: its own timer decides
        if (NeverHeard && !_snapshotInFlight && _deletesInFlight == 0)
        {
            PassivateWhenIdle();
            return;
        }
        var deadline = _state.Status == DeviceStatus.Unknown ? null : LastContact() + _settings.OfflineAfter;
        if (deadline is not null && _silenceWatch is null) return; // nobody would mark it Offline
        if (_snapshotInFlight || _deletesInFlight > 0)
        {
            _passivateAfterSnapshot = true;
            return;
        }
        if (_snapshotted != (LastSequenceNr, _state.LastRequestSequence, _lastHeard) && !JournalHoldsMemory())
        {
            _passivateAfterSnapshot = true;
            TakeSnapshot();
            return;
        }
        if (deadline is { } due) _silenceWatch!.Tell(new WatchSilence(_state.DeviceId, due));
        PassivateWhenIdle();
    }

    // The shard may decline a passivation request (it does while it holds messages for this entity) without telling us;
    // the idle timer asks again, so an idle actor cannot stay live until its offline timeout. A stop cancels the timer.
    private void PassivateWhenIdle()
    {
        Passivate();
        ArmIdleTimer();
    }

    private void ResumePassivation()
    {
        if (!_passivateAfterSnapshot) return;
        _passivateAfterSnapshot = false;
        OnIdle();
    }

    // The silence watch says the offline deadline this actor left with it is due. It may have heard from the device
    // since (then nothing happens); otherwise the device goes Offline as if the actor had stayed live.
    private void OnCheckSilence()
    {
        ArmIdleTimer();
        if (_state.Status is DeviceStatus.Offline or DeviceStatus.Unknown || LastContact() is not { } heard) return;
        if (DateTimeOffset.UtcNow - heard < _settings.OfflineAfter) return;
        GoOffline();
    }

    // Events were written to this device's journal without this actor (bulk registration). An actor that recovered
    // before they were written holds a state without them and would write its next event at a sequence number they
    // already took: it stops, and the shard starts (and recovers) the next incarnation on the next message. What it
    // holds only in memory goes with it; that is never more than a device that was never registered can have.
    private void OnRecoverDevice(RecoverDevice m)
    {
        if (LastSequenceNr >= m.JournaledUpTo) return;
        _log.Info("Device {0} recovered before events up to {1} were written without it; passivating to recover them", _state.DeviceId, m.JournaledUpTo);
        Passivate();
    }

    // True when recovering from the journal (and any snapshot already saved) gives back what this actor holds: every
    // event is journaled, the request sequence mark is one a journaled event carries, and the last contact it heard is
    // the journaled last-seen (within JournalHoldsContactTolerance). Its passivation then needs no snapshot write.
    private bool JournalHoldsMemory() =>
        !_sequenceOnlyInMemory && (_lastHeard is not { } heard || _state.LastSeen is { } seen && heard - seen <= JournalHoldsContactTolerance);

    // The later of what this actor heard (its own clock, or the persisted last-seen: a snapshot's contact time can be
    // older than events journaled after it) and the node's last sighting.
    private DateTimeOffset? LastContact()
    {
        var heard = _lastHeard is { } own && (_state.LastSeen is not { } seen || own > seen) ? own : _state.LastSeen;
        var sighted = _sightings?.LastSighted(_state.DeviceId);
        return heard is null ? sighted : sighted is null ? heard : heard > sighted ? heard : sighted;
    }

    private void SnapshotSettled()
    {
        _snapshotInFlight = false;
        if (_snapshotDue) TakeSnapshot();
    }

    // Restarts the silence period. The timer itself is only started when none is pending: re-scheduling it on every
    // check-in left one cancelled timer per check-in in the scheduler for the whole period, garbage that 100k devices
    // turn into collector pauses. When the pending timer fires early, OnSilence re-arms it for what is left.
    private void ArmSilenceTimer()
    {
        _silenceSince = Stopwatch.GetTimestamp();
        if (!Timers.IsTimerActive(SilenceTimerKey))
            Timers.StartSingleTimer(SilenceTimerKey, SilenceTimeout.Instance, _settings.OfflineAfter);
    }

    private void OnSilence()
    {
        var left = _settings.OfflineAfter - Stopwatch.GetElapsedTime(_silenceSince);
        if (left > TimeSpan.Zero)
        {
            Timers.StartSingleTimer(SilenceTimerKey, SilenceTimeout.Instance, left);
            return;
        }
        if (_state.Status is DeviceStatus.Offline or DeviceStatus.Unknown || _state.LastSeen is null)
        {
            Passivate();
            return;
        }
        // Silent to this actor, but the gateways may have answered the device without it since.
        var since = DateTimeOffset.UtcNow - LastContact();
        if (since < _settings.OfflineAfter)
        {
            Timers.StartSingleTimer(SilenceTimerKey, SilenceTimeout.Instance, _settings.OfflineAfter - since.Value);
            return;
        }
        GoOffline();
    }

    private void GoOffline()
    {
        // The event names the device's last contact, sightings included (the persisted last-seen may be older).
        var lastSeen = LastContact() is { } contact && (_state.LastSeen is null || contact > _state.LastSeen) ? contact : _state.LastSeen;
        var offline = new DeviceWentOffline(lastSeen, DateTimeOffset.UtcNow);
        PersistThenReply(new CommandOutcome([offline], s => new DeviceCommandAccepted(s.DeviceId, s.Status)), ActorRefs.Nobody);
        DeferAsync(offline, _ => Passivate());
    }

    // Under sharding the shard stops us (and buffers messages meanwhile); outside sharding (tests) the parent ignores it.
    private void Passivate() => Context.Parent.Tell(new Passivate(StopDevice.Instance));

    /// <summary>Self-sent timer message; local only, never serialized.</summary>
    private sealed class IdleTimeout : INoSerializationVerificationNeeded
    {
        public static readonly IdleTimeout Instance = new();
    }

    /// <summary>Self-sent timer message; local only, never serialized.</summary>
    private sealed class SilenceTimeout : INoSerializationVerificationNeeded
    {
        public static readonly SilenceTimeout Instance = new();
    }
}

/// <summary>Stop message the shard sends back on passivation and hand-off (processed in order, after pending persists).</summary>
public sealed class StopDevice : INoSerializationVerificationNeeded
{
    /// <summary>The instance.</summary>
    public static readonly StopDevice Instance = new();
    private StopDevice() { }
}
