using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.DeviceActors.Tests.Infrastructure;
using Orchestrator.Messages.Devices;
using Orchestrator.TestSupport.Akka;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>
/// <see cref="DeviceJournal"/> against a real database: the rows are Akka.Persistence.Sql's (read back by the plugin's
/// read journal, and the plugin's rows by us), batches isolate a bad write, unserializable events are rejected,
/// delete keeps the highest sequence number. Runs once per backend. (Akka.Persistence.TCK is not on the package
/// mirror, so these tests cover its journal checks that matter here.)
/// </summary>
public abstract class DeviceJournalSuite<TSelf>(ITestOutputHelper output) : DatabaseKitsTestBase(TSelf.Backend, output) where TSelf : IBackendSuite
{
    private readonly ITestOutputHelper _output = output;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DeviceActorSettings Settings = new(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));

    private Task<HostedTestKit> Kit() => NewKit("akka.actor.serialize-messages = off");

    private static IActorRef Journal(Akka.TestKit.Xunit2.TestKit kit) => Akka.Persistence.Persistence.Instance.Apply(kit.Sys).JournalFor(null);

    private static DeviceRegistered Registered(string tag) => new("acme", [tag], T0);

    private static AtomicWrite Atomic(string pid, long fromSeq, params object[] payloads) =>
        new(payloads.Select((p, i) => (IPersistentRepresentation)new Persistent(p, fromSeq + i, pid, string.Empty, false, ActorRefs.NoSender, "w")).ToImmutableList());

    [BackendFact]
    public async Task Snapshot_store_reads_the_latest_snapshot_the_plugin_saved_and_keeps_the_plugins_other_selections()
    {
        var kit = await Kit();
        Assert.StartsWith(typeof(DeviceSnapshotStore).FullName!, kit.Sys.Settings.Config.GetString("akka.persistence.snapshot-store.sql.class"));
        var store = Akka.Persistence.Persistence.Instance.Apply(kit.Sys).SnapshotStoreFor(null);
        var probe = kit.CreateTestProbe();
        var first = new DeviceSnapshot(DeviceState.Initial("s-a") with { Product = "acme", InstalledVersionId = 3 }, T0);
        var second = new DeviceSnapshot(DeviceState.Initial("s-a") with { Product = "acme", InstalledVersionId = 4 }, T0.AddMinutes(1));
        var t1 = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        store.Tell(new SaveSnapshot(new SnapshotMetadata("device-s-a", 5, t1), first), probe);
        probe.ExpectMsg<SaveSnapshotSuccess>(Wait);
        store.Tell(new SaveSnapshot(new SnapshotMetadata("device-s-a", 9, t1.AddMinutes(1)), second), probe);
        probe.ExpectMsg<SaveSnapshotSuccess>(Wait);

        // Latest (every recovery's criteria): our own read.
        store.Tell(new LoadSnapshot("device-s-a", SnapshotSelectionCriteria.Latest, long.MaxValue), probe);
        var latest = probe.ExpectMsg<LoadSnapshotResult>(Wait).Snapshot!;
        Assert.Equal(("device-s-a", 9L, t1.AddMinutes(1).Ticks), (latest.Metadata.PersistenceId, latest.Metadata.SequenceNr, latest.Metadata.Timestamp.Ticks));
        Assert.Equal(second.State with { Tags = [] }, ((DeviceSnapshot)latest.Snapshot).State with { Tags = [] });
        Assert.Equal(second.LastHeard, ((DeviceSnapshot)latest.Snapshot).LastHeard);
        // Up to a sequence number: the plugin's query.
        store.Tell(new LoadSnapshot("device-s-a", new SnapshotSelectionCriteria(8), long.MaxValue), probe);
        Assert.Equal(5L, probe.ExpectMsg<LoadSnapshotResult>(Wait).Snapshot!.Metadata.SequenceNr);
        // None stored.
        store.Tell(new LoadSnapshot("device-none", SnapshotSelectionCriteria.Latest, long.MaxValue), probe);
        Assert.Null(probe.ExpectMsg<LoadSnapshotResult>(Wait).Snapshot);

        // A recovering actor starts from the latest snapshot.
        var state = await kit.Sys.ActorOf(DeviceActor.Props("s-a", Settings)).Ask<DeviceState>(new GetDeviceState("s-a"), Wait);
        Assert.Equal(4, state.InstalledVersionId);
    }

    [BackendFact]
    public async Task Rows_are_the_plugins_rows_and_the_plugins_read_journal_and_recovery_read_them()
    {
        var kit = await Kit();
        var before = DateTime.UtcNow.Ticks;
        foreach (var id in new[] { "j-a", "j-b" })
        {
            var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings));
            await a.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", ["eu"], T0), Wait);
            await a.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", ["us"], T0), Wait);
            await a.Ask<DeviceCommandAccepted>(new AssignTarget(id, "acme", "4.0", 4, "m4", "r7"), Wait);
        }
        var after = DateTime.UtcNow.Ticks;

        Assert.Equal(6, await Db.Scalar("SELECT COUNT(*) FROM journal"));
        Assert.Equal(6, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE identifier = 7131 AND deleted = {False} AND LENGTH(writer_uuid) = 32 AND created BETWEEN {before} AND {after}"));
        Assert.Equal(4, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE manifest = 'DeviceRegistered.v1'"));
        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE manifest = 'TargetAssigned.v1'"));
        // One tag row per tag, keyed by the journal row's ordering and carrying its persistence id and sequence number.
        Assert.Equal(8, await Db.Scalar("SELECT COUNT(*) FROM tags"));
        Assert.Equal(8, await Db.Scalar("SELECT COUNT(*) FROM tags t JOIN journal j ON j.ordering = t.ordering_id AND j.persistence_id = t.persistence_id AND j.sequence_number = t.sequence_nr"));
        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE tag = 'rollout:r7' AND sequence_nr = 3"));

        var query = PersistenceQuery.Get(kit.Sys).ReadJournalFor<SqlReadJournal>(Akka.Persistence.Sql.Query.SqlReadJournal.Identifier);
        var envelopes = await query.CurrentEventsByTag(DeviceEventTagger.AllDevicesTag, Offset.NoOffset())
            .RunWith(Sink.Seq<EventEnvelope>(), kit.Sys.Materializer());
        Assert.Equal(6, envelopes.Count);
        Assert.Equal(envelopes.OrderBy(e => ((Sequence)e.Offset).Value).Select(e => e.Offset), envelopes.Select(e => e.Offset));
        Assert.Equal([1L, 2, 3], envelopes.Where(e => e.PersistenceId == "device-j-a").Select(e => e.SequenceNr));
        Assert.IsType<TargetAssigned>(envelopes.Single(e => e.PersistenceId == "device-j-b" && e.SequenceNr == 3).Event);
        var rollout = await query.CurrentEventsByTag(DeviceEventTagger.RolloutTag("r7"), Offset.NoOffset()).RunWith(Sink.Seq<EventEnvelope>(), kit.Sys.Materializer());
        Assert.Equal(["device-j-a", "device-j-b"], rollout.Select(e => e.PersistenceId).Order());

        await kit.Sys.Terminate();
        var second = await Kit();
        var state = await second.Sys.ActorOf(DeviceActor.Props("j-b", Settings)).Ask<DeviceState>(new GetDeviceState("j-b"), Wait);
        Assert.Equal(3, state.EventCount);
        Assert.Equal(["us"], state.Tags);
        Assert.Equal(4, state.Target!.VersionId);
    }

    [BackendFact]
    public async Task Tables_of_another_schema_are_refused_at_start_naming_the_columns_and_nothing_is_changed()
    {
        // As a newer or older plugin version could have left them: a column we do not write, one we need missing.
        await Db.Execute("DROP TABLE tags; ALTER TABLE journal ADD COLUMN event_manifest TEXT NULL; ALTER TABLE journal DROP COLUMN writer_uuid;");
        var ex = await Assert.ThrowsAsync<JournalSchemaException>(() => Db.Options.PrepareDatabase());
        Assert.Contains("table 'journal' has column(s) event_manifest this version does not write", ex.Message);
        Assert.Contains("table 'journal' lacks column(s) writer_uuid", ex.Message);
        Assert.Contains("Fix:", ex.Message);
        var tagsTable = Db.Options.Backend == PersistenceBackend.Sqlite
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'tags'"
            : "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'tags'";
        Assert.Equal(0, await Db.Scalar(tagsTable)); // refused before the DDL ran

        // The journal refuses the same way when its actor starts (a node whose database changed under it).
        await using var store = JournalStore.For(Db.Options);
        await Assert.ThrowsAsync<JournalSchemaException>(() => store.EnsureTables(CancellationToken.None));
    }

    [BackendFact]
    public async Task A_failing_write_in_a_batch_fails_alone_and_its_neighbours_commit()
    {
        await using var store = JournalStore.For(Db.Options);
        var recording = new RecordingStore(store);
        var tables = new TaskCompletionSource();
        var failedBatches = 0;
        var writer = new BatchingWriter(recording, writers: 1, maxRowsPerBatch: 1000, tables.Task, (_, _) => Interlocked.Increment(ref failedBatches));
        var now = DateTime.UtcNow.Ticks;
        JournalRowToWrite Row(string pid, long seq) => new(pid, seq, now, [1, 2, 3], "M.v1", 7131, "w", ["device", "t-" + pid]);

        var existing = AwaitedWrite.Enqueue(writer, Row("p-dup", 1));
        await store.EnsureTables(CancellationToken.None);
        tables.SetResult();
        await existing;

        // Queued while the writer waits: all four go into one batch (checked below). The duplicate (p-dup, 1) and the
        // two-event write whose second event is a duplicate fail; the others commit.
        var gate = new TaskCompletionSource();
        recording.Gate = gate.Task;
        var blocker = AwaitedWrite.Enqueue(writer, Row("p-first", 1));
        await recording.Entered.Task;
        var ok1 = AwaitedWrite.Enqueue(writer, Row("p-ok", 1), Row("p-ok", 2));
        var dup = AwaitedWrite.Enqueue(writer, Row("p-dup", 1));
        var halfDup = AwaitedWrite.Enqueue(writer, Row("p-half", 1), Row("p-dup", 1));
        var ok2 = AwaitedWrite.Enqueue(writer, Row("p-ok2", 1));
        gate.SetResult();
        await blocker;
        await ok1;
        await ok2;
        await Assert.ThrowsAnyAsync<Exception>(() => dup);
        await Assert.ThrowsAnyAsync<Exception>(() => halfDup);
        Assert.Contains(4, recording.BatchSizes);
        Assert.Equal(1, failedBatches);

        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'p-ok'"));
        Assert.Equal(1, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'p-ok2'"));
        Assert.Equal(0, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'p-half'")); // all or nothing
        Assert.Equal(0, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'p-half'"));
        Assert.Equal(1, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'p-dup'"));
        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'p-dup'"));
        Assert.Equal(4, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'p-ok'"));
        // Orderings follow sequence numbers within a persistence id (events-by-tag readers rely on it).
        Assert.Equal(0, await Db.Scalar(
            "SELECT COUNT(*) FROM journal a JOIN journal b ON a.persistence_id = b.persistence_id AND a.sequence_number < b.sequence_number AND a.ordering > b.ordering"));
        await writer.Complete();
    }

    [BackendFact]
    public async Task An_event_that_cannot_be_serialized_is_rejected_and_the_other_writes_are_stored()
    {
        var kit = await Kit();
        var journal = Journal(kit);
        var probe = kit.CreateTestProbe();
        journal.Tell(new WriteMessages(
            [Atomic("s-1", 1, Registered("a")), Atomic("s-1", 2, new Unserializable()), Atomic("s-1", 3, Registered("c"))], probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        Assert.IsType<WriteMessageSuccess>(probe.ReceiveOne(Wait));
        var rejected = Assert.IsType<WriteMessageRejected>(probe.ReceiveOne(Wait));
        Assert.Equal(2, rejected.Persistent.SequenceNr);
        Assert.Equal(3, Assert.IsType<WriteMessageSuccess>(probe.ReceiveOne(Wait)).Persistent.SequenceNr);
        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 's-1'"));
    }

    [BackendFact]
    public async Task Delete_keeps_the_highest_sequence_number_removes_tag_rows_and_replay_honours_range_and_max()
    {
        var kit = await Kit();
        var journal = Journal(kit);
        var probe = kit.CreateTestProbe();
        journal.Tell(new WriteMessages([Atomic("d-1", 1, Registered("a"), Registered("b")), Atomic("d-1", 3, Registered("c")), Atomic("d-1", 4, Registered("d"))], probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        for (var i = 0; i < 4; i++) probe.ExpectMsg<WriteMessageSuccess>(Wait); // one per event

        journal.Tell(new ReplayMessages(2, 4, 2, "d-1", probe.Ref));
        Assert.Equal(2, probe.ExpectMsg<ReplayedMessage>(Wait).Persistent.SequenceNr);
        var third = probe.ExpectMsg<ReplayedMessage>(Wait).Persistent;
        Assert.Equal(3, third.SequenceNr);
        Assert.Equal(["c"], Assert.IsType<DeviceRegistered>(third.Payload).Tags);
        Assert.Equal("DeviceRegistered.v1", third.Manifest);
        Assert.Equal(4, probe.ExpectMsg<RecoverySuccess>(Wait).HighestSequenceNr);

        journal.Tell(new DeleteMessagesTo("d-1", 2, probe.Ref));
        probe.ExpectMsg<DeleteMessagesSuccess>(Wait);
        // The plugin's semantics: rows up to 2 marked deleted, those below the highest marked one removed.
        Assert.Equal(3, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'd-1'"));
        Assert.Equal(2, await Db.Scalar($"SELECT MIN(sequence_number) FROM journal WHERE persistence_id = 'd-1' AND deleted = {True}"));
        Assert.Equal(2, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'd-1'"));

        journal.Tell(new DeleteMessagesTo("d-1", 4, probe.Ref));
        probe.ExpectMsg<DeleteMessagesSuccess>(Wait);
        Assert.Equal(1, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'd-1'"));
        Assert.Equal(0, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'd-1'"));
        journal.Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, "d-1", probe.Ref));
        Assert.Equal(4, probe.ExpectMsg<RecoverySuccess>(Wait).HighestSequenceNr); // nothing replayed, the number survives

        // A device actor whose events were all deleted continues after the highest number.
        journal.Tell(new WriteMessages([Atomic("d-1", 5, Registered("e"))], probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        probe.ExpectMsg<WriteMessageSuccess>(Wait);
        journal.Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, "d-1", probe.Ref));
        Assert.Equal(5, probe.ExpectMsg<ReplayedMessage>(Wait).Persistent.SequenceNr);
        Assert.Equal(5, probe.ExpectMsg<RecoverySuccess>(Wait).HighestSequenceNr);
    }

    [BackendFact]
    public async Task A_recoverys_one_read_gives_what_the_highest_number_and_the_replay_give()
    {
        var kit = await Kit();
        var journal = Journal(kit);
        var probe = kit.CreateTestProbe();
        journal.Tell(new WriteMessages([Atomic("r-1", 1, Registered("a"), Registered("b"), Registered("c"))], probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        for (var i = 0; i < 3; i++) probe.ExpectMsg<WriteMessageSuccess>(Wait);
        journal.Tell(new DeleteMessagesTo("r-1", 3, probe.Ref)); // 1 and 2 removed, 3 kept marked deleted
        probe.ExpectMsg<DeleteMessagesSuccess>(Wait);
        journal.Tell(new WriteMessages([Atomic("r-1", 4, Registered("d"), Registered("e"))], probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        for (var i = 0; i < 2; i++) probe.ExpectMsg<WriteMessageSuccess>(Wait);

        await using var store = JournalStore.For(Db.Options);
        foreach (var from in new long[] { 1, 3, 4, 5, 6 })
        {
            var one = new List<StoredJournalRow>();
            await store.RowsFrom("r-1", from, one.Add, CancellationToken.None);
            var two = await TwoReads(store, "r-1", from);
            // What DeviceJournal takes from them: the events to replay, and the highest number (the last row's).
            Assert.Equal(two.Where(r => !r.Deleted).Select(r => r.SequenceNr), one.Where(r => !r.Deleted).Select(r => r.SequenceNr));
            Assert.Equal(two.LastOrDefault()?.SequenceNr, one.LastOrDefault()?.SequenceNr);
        }
        // The journal's full recovery (the one-read path): the live events, then the highest number.
        journal.Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, "r-1", probe.Ref));
        Assert.Equal(4, probe.ExpectMsg<ReplayedMessage>(Wait).Persistent.SequenceNr);
        Assert.Equal(5, probe.ExpectMsg<ReplayedMessage>(Wait).Persistent.SequenceNr);
        Assert.Equal(5, probe.ExpectMsg<RecoverySuccess>(Wait).HighestSequenceNr);
    }

    [BackendFact]
    public async Task A_write_that_fails_in_the_database_is_reported_per_event()
    {
        var kit = await Kit();
        var journal = Journal(kit);
        var probe = kit.CreateTestProbe();
        journal.Tell(new WriteMessages([Atomic("f-1", 1, Registered("a"))], probe.Ref, 7));
        probe.ExpectMsg<WriteMessagesSuccessful>(Wait);
        probe.ExpectMsg<WriteMessageSuccess>(Wait);

        // Sequence number 1 again (a second writer of the same id): the unique key fails the whole write in the database.
        journal.Tell(new WriteMessages([Atomic("f-1", 1, Registered("b"), Registered("c"))], probe.Ref, 7));
        Assert.Equal(1, probe.ExpectMsg<WriteMessagesFailed>(Wait).WriteCount);
        var perEvent = new[] { probe.ExpectMsg<WriteMessageFailure>(Wait), probe.ExpectMsg<WriteMessageFailure>(Wait) };
        Assert.Equal([1L, 2L], perEvent.Select(f => f.Persistent.SequenceNr));
        Assert.All(perEvent, f => Assert.Equal(7, f.ActorInstanceId));
        Assert.Equal(1, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id = 'f-1'"));
        Assert.Equal(1, await Db.Scalar("SELECT COUNT(*) FROM tags WHERE persistence_id = 'f-1'"));
    }

    [BackendFact]
    public async Task Deferred_handlers_run_after_the_persists_before_them_and_alone()
    {
        var kit = await Kit();
        var actor = kit.Sys.ActorOf(Props.Create(() => new PersistThenDefer("loop-1")));
        actor.Tell("both", kit.TestActor);
        kit.ExpectMsg("persisted 1", Wait);
        kit.ExpectMsg("deferred after 1", Wait);
        actor.Tell("defer-only", kit.TestActor);
        kit.ExpectMsg("deferred after 1", Wait);
    }

    /// <summary>Persists and defers in one command (one WriteMessages with an AtomicWrite and a deferred message), or only defers.</summary>
    private sealed class PersistThenDefer : ReceivePersistentActor
    {
        public PersistThenDefer(string id)
        {
            PersistenceId = id;
            Command<string>(cmd =>
            {
                var replyTo = Sender;
                if (cmd == "both") Persist(Registered("x"), _ => replyTo.Tell($"persisted {LastSequenceNr}"));
                DeferAsync(cmd, _ => replyTo.Tell($"deferred after {LastSequenceNr}"));
            });
        }

        public override string PersistenceId { get; }
    }

    [BackendFact]
    public async Task A_replay_right_after_a_write_waits_for_it_and_sees_its_sequence_number()
    {
        var kit = await Kit();
        var journal = Journal(kit);
        var probe = kit.CreateTestProbe();
        for (var round = 1; round <= 5; round++)
        {
            // Sent back to back: the write is still queued or committing when the replay asks for the highest number.
            journal.Tell(new WriteMessages([Atomic("h-1", round, Registered("x"))], probe.Ref, 1));
            journal.Tell(new ReplayMessages(round, long.MaxValue, long.MaxValue, "h-1", probe.Ref));
            var got = Enumerable.Range(0, 4).Select(_ => probe.ReceiveOne(Wait)).ToList();
            Assert.Equal(round, Assert.Single(got.OfType<RecoverySuccess>()).HighestSequenceNr);
            Assert.Equal(round, Assert.Single(got.OfType<ReplayedMessage>()).Persistent.SequenceNr);
        }
    }

    [BackendFact]
    public async Task Events_the_plugins_own_journal_wrote_are_recovered_and_continued_by_ours()
    {
        // Tables created by the plugin itself (auto-initialize), rows written by its journal.
        await Db.Execute("DROP TABLE tags; DROP TABLE journal;");
        var plugin = await NewKit($"""
            akka.actor.serialize-messages = off
            akka.persistence.journal.plugin = "akka.persistence.journal.sql"
            akka.persistence.journal.sql.auto-initialize = on
            """);
        var a = plugin.Sys.ActorOf(DeviceActor.Props("c-1", Settings));
        await a.Ask<DeviceCommandAccepted>(new RegisterDevice("c-1", "acme", ["eu"], T0), Wait);
        await a.Ask<DeviceCommandAccepted>(new AssignTarget("c-1", "acme", "4.0", 4, "m4", "r1"), Wait);
        var before = await a.Ask<DeviceState>(new GetDeviceState("c-1"), Wait);
        await plugin.Sys.Terminate();
        var pluginSchema = await Db.DescribeJournalSchema();
        _output.WriteLine(pluginSchema);
        foreach (var part in new[] { "journal_uq", "journal_created_idx", "journal_sequence_number_idx", "tags_tag_idx", "tags_persistence_id_sequence_nr_idx", "writer_uuid", "ordering_id" })
            Assert.Contains(part, pluginSchema);

        var ours = await Kit();
        var again = ours.Sys.ActorOf(DeviceActor.Props("c-1", Settings));
        var recovered = await again.Ask<DeviceState>(new GetDeviceState("c-1"), Wait);
        Assert.Equal(before.EventCount, recovered.EventCount);
        Assert.Equal(before.Target!.VersionId, recovered.Target!.VersionId);
        await again.Ask<DeviceCommandAccepted>(new RegisterDevice("c-1", "acme", ["us"], T0), Wait);
        Assert.Equal(3, await Db.Scalar("SELECT MAX(sequence_number) FROM journal WHERE persistence_id = 'device-c-1'"));
        var envelopes = await PersistenceQuery.Get(ours.Sys).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier)
            .CurrentEventsByTag(DeviceEventTagger.AllDevicesTag, Offset.NoOffset()).RunWith(Sink.Seq<EventEnvelope>(), ours.Sys.Materializer());
        Assert.Equal([1L, 2, 3], envelopes.Select(e => e.SequenceNr));

        // Our additions (the tags (tag, ordering_id) index, the journal's Csv tags column, filled from the tag rows for
        // the plugin's events) give a plugin-created database exactly the schema our DDL gives a fresh one.
        Assert.Equal([";device;", ";device;rollout:r1;", ";device;"],
            await Db.Strings("SELECT tags FROM journal WHERE persistence_id = 'device-c-1' ORDER BY sequence_number"));
        var upgraded = await Db.DescribeJournalSchema();
        await using var fresh = await TestDatabase.Create(TSelf.Backend);
        Assert.Equal(upgraded, await fresh.DescribeJournalSchema());
        Assert.Contains(JournalStore.TagOrderingIndex, upgraded);
        Assert.DoesNotContain(JournalStore.TagOrderingIndex, pluginSchema);
    }

    private string True => Db.Options.Backend == PersistenceBackend.Sqlite ? "1" : "true";

    private string False => Db.Options.Backend == PersistenceBackend.Sqlite ? "0" : "false";

    /// <summary>Newtonsoft (the fallback serializer) fails on the throwing getter: a payload that cannot be serialized.</summary>
    private sealed class Unserializable
    {
        public int Boom => throw new InvalidOperationException("cannot be serialized");
    }

    // The recovery's reads as AsyncWriteJournal makes them (the highest number, then the replay up to it), in RowsFrom's
    // shape: the reference the one-read path is held to. Deletion keeps the highest row, marked deleted, which Replay
    // skips: its number comes as such a row.
    private static async Task<List<StoredJournalRow>> TwoReads(JournalStore store, string persistenceId, long from)
    {
        var rows = new List<StoredJournalRow>();
        var highest = await store.ReadHighestSequenceNr(persistenceId, Math.Max(0, from - 1), CancellationToken.None);
        if (highest < from) return rows;
        await store.Replay(persistenceId, from, highest, long.MaxValue, rows.Add, CancellationToken.None);
        if (rows.Count == 0 || rows[^1].SequenceNr < highest)
            rows.Add(new StoredJournalRow(0, 0, Deleted: true, persistenceId, highest, [], null, null, null));
        return rows;
    }

    /// <summary>Delegates to a real store; records each batch's size and can hold the first write until a gate opens.</summary>
    private sealed class RecordingStore(JournalStore inner) : JournalStore
    {
        public List<int> BatchSizes { get; } = [];
        public Task? Gate { get; set; }
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task EnsureTables(CancellationToken ct) => inner.EnsureTables(ct);
        public override IJournalBatchWriter CreateWriter() => new Writer(this, inner.CreateWriter());
        public override Task<long> ReadHighestSequenceNr(string persistenceId, long fromSequenceNr, CancellationToken ct) => inner.ReadHighestSequenceNr(persistenceId, fromSequenceNr, ct);
        public override Task Replay(string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<StoredJournalRow> onRow, CancellationToken ct) =>
            inner.Replay(persistenceId, fromSequenceNr, toSequenceNr, max, onRow, ct);
        public override Task RowsFrom(string persistenceId, long fromSequenceNr, Action<StoredJournalRow> onRow, CancellationToken ct) =>
            inner.RowsFrom(persistenceId, fromSequenceNr, onRow, ct);
        public override Task DeleteTo(string persistenceId, long toSequenceNr, CancellationToken ct) => inner.DeleteTo(persistenceId, toSequenceNr, ct);
        public override Task<HashSet<string>> Journaled(IReadOnlyCollection<string> persistenceIds, CancellationToken ct) => inner.Journaled(persistenceIds, ct);
        public override Task<StoredSnapshotRow?> LatestSnapshot(string persistenceId, CancellationToken ct) => inner.LatestSnapshot(persistenceId, ct);

        private sealed class Writer(RecordingStore owner, IJournalBatchWriter inner) : IJournalBatchWriter
        {
            public async Task Write(IReadOnlyList<PendingWrite> batch, CancellationToken ct)
            {
                lock (owner.BatchSizes) owner.BatchSizes.Add(batch.Count);
                if (owner.Gate is { } gate)
                {
                    owner.Gate = null;
                    owner.Entered.TrySetResult();
                    await gate;
                }
                await inner.Write(batch, ct);
            }

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}

public sealed class SqliteDeviceJournalTests(ITestOutputHelper output) : DeviceJournalSuite<SqliteDeviceJournalTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.Sqlite;
}

public sealed class PostgresDeviceJournalTests(ITestOutputHelper output) : DeviceJournalSuite<PostgresDeviceJournalTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.PostgreSql;
}
