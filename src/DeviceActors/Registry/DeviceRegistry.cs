using Akka.Actor;
using Akka.Event;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Registry;

/// <summary>
/// Device registry read model: follows every device event through persistence query (EventsByTag
/// <see cref="DeviceEventTagger.AllDevicesTag"/>, live), folds them with the same
/// <see cref="DeviceStateMachine.Apply"/> the actors use, and answers <see cref="QueryDevices"/> by status,
/// installed version, tag and rollout. It is rebuilt from the journal on start (no stored offset): memory is one
/// compact <see cref="DeviceRow"/> per device (it runs on every gateway, so it is sized for the whole fleet), and
/// answers lag the journal by about the query refresh interval. It first folds the journal as it stands at its start
/// (a current query, which completes there), marks its table caught up (<see cref="DeviceRowTable.CaughtUp"/>), then
/// follows the journal live from where the first query ended.
/// Run one per node that needs it (e.g. gateway/admin), or as a cluster singleton.
/// </summary>
public sealed class DeviceRegistry : ReceiveActor, IWithTimers
{
    /// <summary>Plugin id of the Akka.Persistence.Sql read journal.</summary>
    public const string ReadJournalPluginId = "akka.persistence.query.journal.sql";

    private readonly DeviceRowTable _table;
    private readonly Dictionary<string, DeviceRow> _devices;
    private readonly RowValues _values = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _offset;
    private long _eventsApplied;
    private bool _caughtUp;

    /// <summary>Props of the registry.</summary>
    /// <param name="table">Where to keep the rows (shared with the node's gateway for the idle fast path); a private one when null.</param>
    public static Props Props(DeviceRowTable? table = null) => Akka.Actor.Props.Create(() => new DeviceRegistry(table ?? new DeviceRowTable()));

    /// <summary>
    /// Props of a stand-in that forwards every query to <paramref name="registry"/>: for a component that wants the
    /// registry as its own child (the rollout coordinator) on a node that already runs one, so the node folds the
    /// journal and keeps a row per device once, not twice.
    /// </summary>
    /// <param name="registry">The node's registry.</param>
    public static Props ForwardingTo(IActorRef registry) => Akka.Actor.Props.Create(() => new Forwarder(registry));

    /// <summary>Creates the registry; use <see cref="Props"/>.</summary>
    /// <param name="table">The rows this registry writes.</param>
    public DeviceRegistry(DeviceRowTable table)
    {
        _table = table;
        // A registry folds from offset 0: rows an earlier incarnation left (the table outlives it) would get every event twice.
        table.Clear();
        _devices = table.Rows;
        Receive<StreamInit>(_ => Sender.Tell(StreamAck.Instance));
        Receive<Envelope>(e =>
        {
            Apply(e.Value);
            Sender.Tell(StreamAck.Instance);
        });
        Receive<StreamFailed>(f =>
        {
            _log.Warning(f.Cause, "Device registry event stream failed at offset {0}; restarting in 1s", _offset);
            Timers.StartSingleTimer("restart", RestartStream.Instance, TimeSpan.FromSeconds(1));
        });
        Receive<RestartStream>(_ => RunStream());
        Receive<StreamCompleted>(_ =>
        {
            if (_caughtUp)
            {
                _log.Warning("Device registry event stream completed unexpectedly at offset {0}", _offset);
                return;
            }
            // The current query ended where the journal stood when it started: every row holds what was journaled
            // before this registry started.
            _caughtUp = true;
            _table.MarkCaughtUp();
            _log.Info("Device registry caught up with the journal at offset {0} ({1} events)", _offset, _eventsApplied);
            RunStream();
        });
        Receive<QueryDevices>(q => Sender.Tell(Answer(q)));
        Receive<CountDevices>(q => Sender.Tell(Count(q)));
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <inheritdoc />
    protected override void PreStart() => RunStream();

    private void RunStream()
    {
        var journal = PersistenceQuery.Get(Context.System).ReadJournalFor<SqlReadJournal>(ReadJournalPluginId);
        var events = _caughtUp
            ? journal.EventsByTag(DeviceEventTagger.AllDevicesTag, Offset.Sequence(_offset))
            : journal.CurrentEventsByTag(DeviceEventTagger.AllDevicesTag, Offset.Sequence(_offset));
        events
            .Select(e => new Envelope(e))
            .RunWith(Sink.ActorRefWithAck<Envelope>(Self, StreamInit.Instance, StreamAck.Instance, StreamCompleted.Instance,
                ex => new StreamFailed(ex)), Context.Materializer());
    }

    private void Apply(EventEnvelope e)
    {
        if (e.Offset is Sequence s)
        {
            if (s.Value <= _offset) return; // replayed after a stream restart
            _offset = s.Value;
        }
        if (e.Event is not IDeviceEvent evt || !e.PersistenceId.StartsWith(DeviceActor.PersistenceIdPrefix, StringComparison.Ordinal)) return;
        var row = _table.GetOrAdd(e.PersistenceId.AsSpan(DeviceActor.PersistenceIdPrefix.Length));
        row.Apply(evt, e.SequenceNr, _values);
        _eventsApplied++;
    }

    private DeviceList Answer(QueryDevices q)
    {
        // Decommissioned devices leave every fleet view (lists, rollouts, dashboard); their history stays readable.
        var matches = _devices.Values.Where(r => !r.Decommissioned && r.Matches(q)).ToList();
        var page = matches.OrderBy(r => r.DeviceId, StringComparer.Ordinal).Take(q.Limit).Select(r => r.ToSummary()).ToList();
        return new DeviceList(page, matches.Count, _eventsApplied);
    }

    private DeviceCounts Count(CountDevices q)
    {
        var byStatus = Enum.GetValues<DeviceStatus>().ToDictionary(s => s, _ => 0);
        var silent = 0;
        foreach (var row in _devices.Values)
        {
            if (row.Decommissioned) continue;
            byStatus[row.Status]++;
            if (row.SilentSince(q.StaleBefore)) silent++;
        }
        return new DeviceCounts(byStatus, silent, _eventsApplied);
    }

    private sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef registry) => ReceiveAny(m => registry.Forward(m));
    }

    // Stream protocol messages: local to this actor and its stream, never serialized.
    private sealed record Envelope(EventEnvelope Value) : INoSerializationVerificationNeeded;
    private sealed class StreamInit : INoSerializationVerificationNeeded { public static readonly StreamInit Instance = new(); }
    private sealed class StreamAck : INoSerializationVerificationNeeded { public static readonly StreamAck Instance = new(); }
    private sealed class StreamCompleted : INoSerializationVerificationNeeded { public static readonly StreamCompleted Instance = new(); }
    private sealed class RestartStream : INoSerializationVerificationNeeded { public static readonly RestartStream Instance = new(); }
    private sealed record StreamFailed(Exception Cause) : INoSerializationVerificationNeeded;
}
