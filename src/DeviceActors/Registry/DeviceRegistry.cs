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
/// <see cref="DeviceState"/> per device, and answers lag the journal by about the query refresh interval.
/// Run one per node that needs it (e.g. gateway/admin), or as a cluster singleton.
/// </summary>
public sealed class DeviceRegistry : ReceiveActor, IWithTimers
{
    /// <summary>Plugin id of the Akka.Persistence.Sql read journal.</summary>
    public const string ReadJournalPluginId = "akka.persistence.query.journal.sql";

    private readonly Dictionary<string, DeviceState> _devices = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _offset;
    private long _eventsApplied;

    /// <summary>Props of the registry.</summary>
    public static Props Props() => Akka.Actor.Props.Create(() => new DeviceRegistry());

    /// <summary>Creates the registry; use <see cref="Props"/>.</summary>
    public DeviceRegistry()
    {
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
        Receive<StreamCompleted>(_ => _log.Warning("Device registry event stream completed unexpectedly at offset {0}", _offset));
        Receive<QueryDevices>(q => Sender.Tell(Answer(q)));
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <inheritdoc />
    protected override void PreStart() => RunStream();

    private void RunStream()
    {
        var journal = PersistenceQuery.Get(Context.System).ReadJournalFor<SqlReadJournal>(ReadJournalPluginId);
        journal.EventsByTag(DeviceEventTagger.AllDevicesTag, Offset.Sequence(_offset))
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
        var id = e.PersistenceId[DeviceActor.PersistenceIdPrefix.Length..];
        if (!_devices.TryGetValue(id, out var state)) state = DeviceState.Initial(id);
        _devices[id] = DeviceStateMachine.Apply(state, evt, e.SequenceNr);
        _eventsApplied++;
    }

    private DeviceList Answer(QueryDevices q)
    {
        // Decommissioned devices leave every fleet view (lists, rollouts, dashboard); their history stays readable.
        var matches = _devices.Values.Where(s => s.Decommissioned is null &&
                (q.Status is null || s.Status == q.Status) &&
                (q.InstalledVersionId is null || s.InstalledVersionId == q.InstalledVersionId) &&
                (q.Tag is null || s.Tags.Contains(q.Tag, StringComparer.Ordinal)) &&
                (q.RolloutId is null || s.Target?.RolloutId == q.RolloutId) &&
                (q.Attributes is null || Messages.Protocol.DeviceAttributeRules.HasAll(s.Attributes, q.Attributes)))
            .ToList();
        var page = matches.OrderBy(s => s.DeviceId, StringComparer.Ordinal).Take(q.Limit)
            .Select(s => new DeviceSummary(s.DeviceId, s.Status, s.Product, s.InstalledVersionId, s.Tags, s.Target?.RolloutId,
                s.Target?.VersionId, s.FailedAttempts, s.LastSeen, s.Stale, s.FloorVersionId, s.UpdaterLost is not null,
                s.ReportedAttributes is null && s.OperatorAttributes is null ? null : s.Attributes))
            .ToList();
        return new DeviceList(page, matches.Count, _eventsApplied);
    }

    // Stream protocol messages: local to this actor and its stream, never serialized.
    private sealed record Envelope(EventEnvelope Value) : INoSerializationVerificationNeeded;
    private sealed class StreamInit : INoSerializationVerificationNeeded { public static readonly StreamInit Instance = new(); }
    private sealed class StreamAck : INoSerializationVerificationNeeded { public static readonly StreamAck Instance = new(); }
    private sealed class StreamCompleted : INoSerializationVerificationNeeded { public static readonly StreamCompleted Instance = new(); }
    private sealed class RestartStream : INoSerializationVerificationNeeded { public static readonly RestartStream Instance = new(); }
    private sealed record StreamFailed(Exception Cause) : INoSerializationVerificationNeeded;
}
