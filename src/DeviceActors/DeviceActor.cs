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
/// passivates itself (sharding's own idle passivation is off, see <see cref="DeviceActorsConfig"/>).
/// Heartbeats (check-ins that change nothing but LastSeen) are persisted at most every
/// <see cref="DeviceActorSettings.LastSeenPersistInterval"/>; the state held here is the persisted one (so its
/// LastSeen may lag by that interval) except for <see cref="DeviceState.LastRequestSequence"/>, which every accepted
/// device request advances, while the silence timer is re-armed by every check-in, persisted or not.
/// Behaviours: <c>Settled</c> (Unknown/Idle/Completed: reports are refused), <c>Working</c> (accepts reports),
/// <c>Dormant</c> (Offline: device traffic first resumes the previous status).
/// </summary>
public sealed class DeviceActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>Prefix of the persistence id; the registry strips it to get the device id.</summary>
    public const string PersistenceIdPrefix = "device-";

    private const string SilenceTimerKey = "silence";
    private readonly DeviceActorSettings _settings;
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

    /// <summary>Props for the actor of <paramref name="deviceId"/>.</summary>
    /// <param name="deviceId">Validated device id (the sharding entity id).</param>
    /// <param name="settings">Tunables.</param>
    public static Props Props(string deviceId, DeviceActorSettings settings) =>
        Akka.Actor.Props.Create(() => new DeviceActor(deviceId, settings));

    /// <summary>Creates the actor; use <see cref="Props"/>.</summary>
    /// <param name="deviceId">Device id.</param>
    /// <param name="settings">Tunables.</param>
    public DeviceActor(string deviceId, DeviceActorSettings settings)
    {
        _settings = settings;
        _state = DeviceState.Initial(deviceId);
        PersistenceId = PersistenceIdPrefix + deviceId;

        Recover<SnapshotOffer>(offer =>
        {
            _state = (DeviceState)offer.Snapshot;
            _lastSnapshotSequenceNr = offer.Metadata.SequenceNr;
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
    public ITimerScheduler Timers { get; set; } = null!;

    private void BecomeFor(DeviceStatus status)
    {
        var next = status == DeviceStatus.Offline ? Behaviour.Dormant
            : DeviceStateMachine.IsWorking(status) ? Behaviour.Working
            : Behaviour.Settled;
        // Become rebuilds the handler table; doing it on every event made it most of the per-event allocation,
        // and with 100k live actors that garbage is what the collector spends its pauses on.
        if (next == _behaviour) return;
        _behaviour = next;
        Become(next switch
        {
            Behaviour.Dormant => Dormant,
            Behaviour.Working => Working,
            _ => Settled,
        });
    }

    private enum Behaviour { Settled, Working, Dormant }

    private void Settled()
    {
        Command<ReportProgress>(c => RefuseReport(c));
        Command<ReportFailure>(c => RefuseReport(c));
        Command<ReportCompletion>(c => RefuseReport(c));
        Common();
    }

    private void Working() => Common();

    private void Dormant() => Common();

    private void Common()
    {
        Command<IDeviceCommand>(Handle);
        Command<SilenceTimeout>(_ => OnSilence());
        Command<StopDevice>(_ => Context.Stop(Self));
        Command<SaveSnapshotSuccess>(s =>
        {
            DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
            SnapshotSettled();
        });
        Command<SaveSnapshotFailure>(f =>
        {
            _log.Warning(f.Cause, "Snapshot of {0} at {1} failed; recovery replays more events", PersistenceId, f.Metadata.SequenceNr);
            SnapshotSettled();
        });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "Deleting old snapshots of {0} failed", PersistenceId));
    }

    private void RefuseReport(IDeviceCommand c)
    {
        // Still proof of life: a settled device that reports is online.
        ArmSilenceTimer();
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
        if (seq > _state.LastRequestSequence) _state = _state with { LastRequestSequence = seq };
    }

    private void PersistThenReply(CommandOutcome outcome, IActorRef replyTo)
    {
        if (outcome.Events.Count == 0)
        {
            replyTo.Tell(outcome.Reply(_state));
            return;
        }
        var remaining = outcome.Events.Count;
        PersistAll(outcome.Events, e =>
        {
            _state = DeviceStateMachine.Apply(_state, e, LastSequenceNr);
            if (--remaining > 0) return;
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
        SaveSnapshot(_state);
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
        var offline = new DeviceWentOffline(_state.LastSeen, DateTimeOffset.UtcNow);
        PersistThenReply(new CommandOutcome([offline], s => new DeviceCommandAccepted(s.DeviceId, s.Status)), ActorRefs.Nobody);
        DeferAsync(offline, _ => Passivate());
    }

    // Under sharding the shard stops us (and buffers messages meanwhile); outside sharding (tests) the parent ignores it.
    private void Passivate() => Context.Parent.Tell(new Passivate(StopDevice.Instance));

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
