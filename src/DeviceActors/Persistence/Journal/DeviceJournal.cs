using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Serialization;
using Akka.Util;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// Write journal of the device actors (plugin id <see cref="PluginId"/>, configured by <see cref="DeviceJournalOptions"/>).
/// It writes exactly the rows Akka.Persistence.Sql 1.5.73 writes in TagTable mode with its default table mapping
/// (<c>journal</c> and <c>tags</c>: same columns, serializer id and manifest rules, <c>created</c> ticks,
/// <c>writer_uuid</c>, one tag row per tag keyed by <c>ordering</c>), so the plugin's read journal (EventsByTag for the
/// device registry) and snapshot store work unchanged, and events the plugin wrote are recovered.
/// Why our own: the plugin inserts one row per linq2db call; this journal batches the writes of all actors into one
/// transaction per batch with prepared statements (see <see cref="BatchingWriter"/>; the measurements are in
/// bench/results/device-actors.md).
/// </summary>
/// <remarks>
/// Config keys (under the plugin id): <c>backend</c> (<c>sqlite</c> or <c>postgresql</c>), <c>connection-string</c>,
/// <c>schema</c> (PostgreSQL, empty for the default), <c>batch-size</c> (most journal rows per transaction),
/// <c>parallelism</c> (writer connections; 1 for SQLite).
/// </remarks>
public sealed class DeviceJournal : AsyncWriteJournal
{
    /// <summary>HOCON path of the plugin.</summary>
    public const string PluginId = "akka.persistence.journal.device";

    private readonly JournalStore _store;
    private readonly int _parallelism;
    private readonly int _batchSize;
    private readonly string _writerUuid = Guid.NewGuid().ToString("N");
    private readonly Akka.Serialization.Serialization _serialization;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _shutdown = new();
    // Like the plugin: the latest write per persistence id, so a recovery that follows a write sees it (ReadHighestSequenceNrAsync).
    // Removed by the write's own continuation (no message back to the journal per write).
    private readonly ConcurrentDictionary<string, ActorWrite> _writesInProgress = new();
    private readonly EventAdapters _adapters;
    private Task _ready = Task.CompletedTask;
    private BatchingWriter? _writer;

    /// <summary>Created by Akka.Persistence with the plugin's config section.</summary>
    /// <param name="config">The section at <see cref="PluginId"/>.</param>
    public DeviceJournal(Config config)
    {
        var backend = config.GetString("backend");
        var connectionString = config.GetString("connection-string");
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new ConfigurationException($"{PluginId}.connection-string is empty: set it (DeviceJournalOptions does).");
        var schema = config.GetString("schema");
        _store = JournalStore.Create(backend, connectionString, schema);
        _batchSize = config.GetInt("batch-size", 1000);
        _parallelism = backend == "sqlite" ? 1 : config.GetInt("parallelism", 3);
        _serialization = Context.System.Serialization;
        _adapters = Akka.Persistence.Persistence.Instance.Apply(Context.System).AdaptersFor(PluginId);
    }

    /// <inheritdoc />
    protected override void PreStart()
    {
        base.PreStart();
        _ready = _store.EnsureTables(_shutdown.Token);
        var log = _log;
        _ready.ContinueWith(t => log.Error(t.Exception!.GetBaseException(), "Device journal could not create its tables; every write and replay fails"),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        _writer = new BatchingWriter(_store, _parallelism, _batchSize, _ready,
            (e, count) => log.Warning(e, "Device journal batch of {0} writes failed; retrying each write in its own transaction", count),
            dedicatedThreads: _store is SqliteJournalStore);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        // Queued writes are still committed (their actors may be waiting); then the connections close.
        var writer = _writer;
        var store = _store;
        _ = Task.Run(async () =>
        {
            if (writer is not null) await writer.Complete();
            await store.DisposeAsync();
        });
        _shutdown.Cancel();
        base.PostStop();
    }

    /// <summary>
    /// Writes take their own path (replay, delete and health checks stay AsyncWriteJournal's): one
    /// <see cref="ActorWrite"/> per WriteMessages, acknowledged from the batch's commit straight to the actor.
    /// AsyncWriteJournal's write path (adapted copies of every event, a circuit breaker, a resequencer actor relaying
    /// every reply) cost as much CPU and garbage per event as the rest of the device actor's path together
    /// (bench/results/device-actors.md). Ordering needs no resequencer: an actor has at most one WriteMessages in
    /// flight, and its replies are sent together, in order, after its rows committed. There is no call timeout either:
    /// a write is acknowledged, failed or rejected by its own outcome, never while it may still commit.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        switch (message)
        {
            case WriteMessages write:
                Write(write);
                return true;
            case ReplayMessages { ToSequenceNr: long.MaxValue, Max: long.MaxValue } replay:
                _ = Recover(replay);
                return true;
            case FindJournaled find:
                _ = FindJournaled(find, Sender);
                return true;
            default:
                return base.AroundReceive(receive, message);
        }
    }

    /// <summary>
    /// A full recovery (every event after the snapshot) with one query instead of AsyncWriteJournal's two (the highest
    /// sequence number, then the events up to it): each device actor that starts recovers, so after a restart or a
    /// failover this is one read per device less. Same answers in the same order: the replayed events (deleted ones
    /// skipped, event adapters applied), then <see cref="RecoverySuccess"/> with the highest sequence number above
    /// <c>FromSequenceNr - 1</c> (0 when there is none, deleted rows counting), or <see cref="ReplayMessagesFailure"/>.
    /// AsyncWriteJournal's replay filter is not applied: it repairs interleaved writers of one sequence number, which
    /// the journal's unique (persistence id, sequence number) index rules out. Partial replays keep the base path.
    /// </summary>
    private async Task Recover(ReplayMessages replay)
    {
        var actor = replay.PersistentActor;
        try
        {
            if (_writesInProgress.TryGetValue(replay.PersistenceId, out var inProgress)) await inProgress.WhenSettled();
            await _ready;
            var highest = 0L;
            await _store.RowsFrom(replay.PersistenceId, Math.Max(1, replay.FromSequenceNr), row =>
            {
                highest = row.SequenceNr;
                if (row.Deleted) return;
                foreach (var adapted in AdaptFromJournal(ToPersistent(row)))
                    actor.Tell(new ReplayedMessage(adapted), ActorRefs.NoSender);
            }, _shutdown.Token);
            actor.Tell(new RecoverySuccess(highest), ActorRefs.NoSender);
        }
        catch (Exception e)
        {
            actor.Tell(new ReplayMessagesFailure(e), ActorRefs.NoSender);
        }
    }

    private async Task FindJournaled(FindJournaled find, IActorRef replyTo)
    {
        try
        {
            await _ready;
            replyTo.Tell(new FoundJournaled(await _store.Journaled(find.PersistenceIds, _shutdown.Token)), ActorRefs.NoSender);
        }
        catch (Exception e)
        {
            replyTo.Tell(new Status.Failure(e), ActorRefs.NoSender);
        }
    }

    /// <summary>Unused: writes never reach AsyncWriteJournal (see <see cref="AroundReceive"/>).</summary>
    protected override Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken) =>
        throw new NotSupportedException("DeviceJournal handles WriteMessages itself.");

    private void Write(WriteMessages message)
    {
        var now = DateTime.UtcNow.Ticks;
        var envelopes = message.Messages.TryGetNonEnumeratedCount(out var n) ? n : message.Messages.Count();
        var rows = new List<JournalRowToWrite>(envelopes);
        Exception?[]? rejections = null;
        var atomicWrites = 0;
        foreach (var envelope in message.Messages)
        {
            if (envelope is not AtomicWrite atomic) continue;
            var index = atomicWrites++;
            var before = rows.Count;
            try
            {
                AddRows(atomic, now, rows);
            }
            catch (Exception e)
            {
                // Cannot be serialized: rejected (the actor is told and keeps running), never a failure of the write.
                // The AtomicWrite's rows added before the failing event go too: all of it or nothing.
                (rejections ??= new Exception?[envelopes])[index] = e;
                rows.RemoveRange(before, rows.Count - before);
            }
        }
        var pending = new ActorWrite(rows.ToArray(), message, atomicWrites, rejections, Self, _writesInProgress);
        if (rows.Count == 0)
        {
            pending.Settle(null);
            return;
        }
        foreach (var row in pending.Rows) _writesInProgress[row.PersistenceId] = pending;
        _writer!.Enqueue(pending);
    }

    /// <inheritdoc />
    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        // Only that the write finished matters, not whether it succeeded (the writing actor is told).
        if (_writesInProgress.TryGetValue(persistenceId, out var inProgress)) await inProgress.WhenSettled();
        await _ready;
        return await _store.ReadHighestSequenceNr(persistenceId, fromSequenceNr, cancellationToken);
    }

    /// <inheritdoc />
    public override async Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        await _ready;
        await _store.Replay(persistenceId, fromSequenceNr, toSequenceNr, max, row => recoveryCallback(ToPersistent(row)), _shutdown.Token);
    }

    /// <inheritdoc />
    protected override async Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken cancellationToken)
    {
        await _ready;
        await _store.DeleteTo(persistenceId, toSequenceNr, cancellationToken);
    }

    /// <summary>
    /// The plugin's row for each event of <paramref name="write"/>: the write event adapter (the tagger) is applied
    /// here, as AsyncWriteJournal would; a <see cref="Tagged"/> payload is unwrapped and its tags become tag rows; the
    /// payload is serialized with its bound serializer; the manifest is a string manifest, else the type name if the
    /// serializer wants one, else empty; <c>created</c> is the event's timestamp or the write's ticks.
    /// </summary>
    private void AddRows(AtomicWrite write, long now, List<JournalRowToWrite> rows)
    {
        foreach (var e in (IImmutableList<IPersistentRepresentation>)write.Payload)
        {
            var adapter = _adapters.Get(e.Payload.GetType());
            var adapted = adapter is IdentityEventAdapter ? e.Payload : adapter.ToJournal(e.Payload);
            var (payload, tags, csv) = adapted switch
            {
                Tagged t when ReferenceEquals(t.Tags, DeviceEventTagger.AllDevicesOnly) => (t.Payload, AllDevicesOnlyTags, AllDevicesOnlyCsv),
                Tagged t => (t.Payload, t.Tags.ToArray(), null),
                _ => (adapted, Array.Empty<string>(), null),
            };
            var serializer = _serialization.FindSerializerFor(payload);
            var manifest = serializer switch
            {
                SerializerWithStringManifest s => s.Manifest(payload),
                { IncludeManifest: true } => payload.GetType().TypeQualifiedName(),
                _ => string.Empty,
            };
            var bytes = Akka.Serialization.Serialization.WithTransport(_serialization.System, (serializer, payload), s => s.serializer.ToBinary(s.payload));
            rows.Add(new JournalRowToWrite(e.PersistenceId, e.SequenceNr, e.Timestamp == 0 ? now : e.Timestamp, bytes, manifest, serializer.Identifier,
                _writerUuid, tags, csv));
        }
    }

    private static readonly string[] AllDevicesOnlyTags = [DeviceEventTagger.AllDevicesTag];
    private static readonly string AllDevicesOnlyCsv = JournalStore.CsvTags(AllDevicesOnlyTags)!;

    /// <summary>The plugin's reading of a row (serializer id and manifest; type name when a row has no serializer id).</summary>
    private Persistent ToPersistent(StoredJournalRow row)
    {
        var payload = row.Identifier is { } id
            ? _serialization.Deserialize(row.Message, id, row.Manifest ?? string.Empty)
            : FromTypeName(row);
        return new Persistent(payload, row.SequenceNr, row.PersistenceId, row.Manifest ?? string.Empty, row.Deleted, ActorRefs.NoSender, row.WriterUuid, row.Created);
    }

    private object FromTypeName(StoredJournalRow row)
    {
        var type = Type.GetType(row.Manifest ?? "", throwOnError: true)!;
        var serializer = _serialization.FindSerializerForType(type);
        return Akka.Serialization.Serialization.WithTransport(_serialization.System, (serializer, row.Message, type), s => s.serializer.FromBinary(s.Message, s.type));
    }
}
