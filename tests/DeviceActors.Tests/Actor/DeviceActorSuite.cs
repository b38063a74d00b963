using System.Text.Json;
using Akka.Actor;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Tests.Infrastructure;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Serialization;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Actor;

/// <summary>
/// The device actor against a real database: persistence, replies after writes, recovery after the actor is killed
/// and after the whole actor system is replaced, snapshots, offline timeout. Runs once per backend.
/// </summary>
public abstract class DeviceActorSuite<TSelf>(ITestOutputHelper output) : DatabaseKitsTestBase(TSelf.Backend, output) where TSelf : IBackendSuite
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static DeviceActorSettings Settings(int snapshotEvery = 100, double offlineSeconds = 600) =>
        new(TimeSpan.FromSeconds(offlineSeconds), snapshotEvery, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));

    private static async Task<T> Ask<T>(IActorRef actor, IDeviceCommand c) => await actor.Ask<T>(c, Wait);

    private static string Json(DeviceState s) => JsonSerializer.Serialize(s, OrchestratorSerializer.JsonOptions);

    private static string Pid(string id) => DeviceActor.PersistenceIdPrefix + id;

    private static CheckIn Clean(string id, long version, string digest = "d-ok") =>
        new(id, "acme", version, digest, digest, $"{version}.0", $"manifests/acme/{version}.json", [], "1.0", T0);

    private static async Task RunUpgradeWithOneFailure(IActorRef a, string id)
    {
        Assert.Equal(DeviceStatus.Idle, (await Ask<CheckInDecision>(a, Clean(id, 3))).Status);
        await Ask<DeviceCommandAccepted>(a, new RegisterDevice(id, "acme", ["eu", "canary"], T0));
        Assert.Equal(DeviceStatus.UpgradeAssigned, (await Ask<DeviceCommandAccepted>(a, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"))).Status);
        var decision = await Ask<CheckInDecision>(a, Clean(id, 3));
        Assert.Equal(UpdateAction.Upgrade, decision.Action);
        Assert.Equal(4, decision.TargetVersionId);
        Assert.Equal(DeviceStatus.Downloading, (await Ask<DeviceCommandAccepted>(a, new ReportProgress(id, 4, WorkPhase.Download, 50, 100, 5, 10, T0))).Status);
        var advice = await Ask<RetryAdvice>(a, new ReportFailure(id, 4, WorkPhase.Download, "connection reset", 1, T0));
        Assert.Equal(1, advice.Attempt);
    }

    [BackendFact]
    public async Task Replayed_request_sequences_are_refused_before_and_after_the_actor_restarts()
    {
        var kit = await NewKit();
        const string id = "dev-replay";
        var settings = new DeviceActorSettings(TimeSpan.FromSeconds(600), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5));
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, settings));
        await Ask<CheckInDecision>(a, Clean(id, 3) with { RequestSequence = 10 });
        // A heartbeat journals nothing, but its sequence number is used up in memory.
        await Ask<CheckInDecision>(a, Clean(id, 3) with { RequestSequence = 11, Timestamp = T0.AddMinutes(1) });
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        var replayedBeat = await Ask<DeviceCommandRejected>(a, Clean(id, 3) with { RequestSequence = 11, Timestamp = T0.AddMinutes(1) });
        Assert.Equal(DeviceRequestSequence.ReplayedCode, replayedBeat.Code);

        await Ask<DeviceCommandAccepted>(a, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"));
        Assert.Equal(UpdateAction.Upgrade, (await Ask<CheckInDecision>(a, Clean(id, 3) with { RequestSequence = 12 })).Action);
        var failure = new ReportFailure(id, 4, WorkPhase.Download, "connection reset", 1, T0, 13);
        Assert.Equal(1, (await Ask<RetryAdvice>(a, failure)).Attempt);
        Assert.Equal(DeviceRequestSequence.ReplayedCode, (await Ask<DeviceCommandRejected>(a, failure)).Code);
        var journaled = await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'");

        kit.Watch(a);
        a.Tell(Kill.Instance);
        kit.ExpectTerminated(a, Wait);
        var again = kit.Sys.ActorOf(DeviceActor.Props(id, settings));
        // The failure's sequence number was journaled with it: after recovery the replay is still refused.
        Assert.Equal(DeviceRequestSequence.ReplayedCode, (await Ask<DeviceCommandRejected>(again, failure)).Code);
        var state = await Ask<DeviceState>(again, new GetDeviceState(id));
        Assert.Equal((1, 13L), (state.FailedAttempts, state.LastRequestSequence));
        Assert.Equal(journaled, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
    }

    [BackendFact]
    public async Task Every_journaling_command_is_marked_before_its_reply_and_a_heartbeat_marks_nothing()
    {
        var kit = await NewKit();
        const string id = "dev-marks";
        var marks = new RecordedMarks();
        var settings = new DeviceActorSettings(TimeSpan.FromSeconds(600), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5));
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, settings, marks: marks));
        await Ask<CheckInDecision>(a, Clean(id, 3) with { RequestSequence = 10 });
        Assert.Equal([(id, 1L, false)], marks.Taken());
        // Nothing journaled: the rows stay as they are, and so may answer.
        await Ask<CheckInDecision>(a, Clean(id, 3) with { RequestSequence = 11 });
        Assert.Empty(marks.Taken());
        // The operator's order: when its acknowledgement arrives the mark is already there, at the journal's number.
        await Ask<DeviceCommandAccepted>(a, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"));
        var journaled = await Db.Scalar($"SELECT MAX(sequence_number) FROM journal WHERE persistence_id = '{Pid(id)}'");
        Assert.Equal([(id, journaled, false)], marks.Taken());
        await Ask<DeviceCommandAccepted>(a, new ResetRequestSequence(id, "credential rotated", T0));
        Assert.Equal([(id, journaled + 1, true)], marks.Taken());
    }

    private sealed class RecordedMarks : IDeviceJournalMarks
    {
        private readonly List<(string, long, bool)> _marks = [];

        public void Journaled(string deviceId, long sequenceNr, bool sequenceReset)
        {
            lock (_marks) _marks.Add((deviceId, sequenceNr, sequenceReset));
        }

        public List<(string, long, bool)> Taken()
        {
            lock (_marks)
            {
                var taken = _marks.ToList();
                _marks.Clear();
                return taken;
            }
        }
    }

    [BackendFact]
    public async Task Upgrade_flow_is_persisted_and_recovered_after_the_actor_is_killed()
    {
        var kit = await NewKit();
        const string id = "dev-upgrade";
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        await RunUpgradeWithOneFailure(a, id);
        var before = await Ask<DeviceState>(a, new GetDeviceState(id));
        Assert.Equal(DeviceStatus.Failed, before.Status);
        Assert.Equal(1, before.FailedAttempts);

        kit.Watch(a);
        a.Tell(Kill.Instance);
        kit.ExpectTerminated(a, Wait);

        var again = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        var after = await Ask<DeviceState>(again, new GetDeviceState(id));
        Assert.Equal(Json(before), Json(after));
        // The persisted attempt count continues.
        Assert.Equal(2, (await Ask<RetryAdvice>(again, new ReportFailure(id, 4, WorkPhase.Download, "again", 2, T0))).Attempt);
        Assert.Equal(DeviceStatus.Installing, (await Ask<DeviceCommandAccepted>(again, new ReportProgress(id, 4, WorkPhase.Install, 100, 100, 10, 10, T0))).Status);
        Assert.Equal(DeviceStatus.Completed, (await Ask<DeviceCommandAccepted>(again, new ReportCompletion(id, 4, "d-4", T0))).Status);
        Assert.Equal(9, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        Assert.Equal(9, (await Ask<DeviceState>(again, new GetDeviceState(id))).EventCount);
    }

    [BackendFact]
    public async Task Heartbeats_are_journaled_only_once_the_persisted_last_seen_is_older_than_the_interval()
    {
        var kit = await NewKit();
        const string id = "dev-heartbeat";
        var settings = new DeviceActorSettings(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5));
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, settings));
        var first = await Ask<CheckInDecision>(a, Clean(id, 3));
        for (var i = 1; i <= 4; i++)
        {
            var beat = await Ask<CheckInDecision>(a, Clean(id, 3) with { Timestamp = T0.AddMinutes(i) });
            Assert.Equal((first.Action, first.Status, first.TargetVersionId), (beat.Action, beat.Status, beat.TargetVersionId));
        }
        var rows = $"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'";
        Assert.Equal(1, await Db.Scalar(rows));
        await Ask<CheckInDecision>(a, Clean(id, 3) with { Timestamp = T0.AddMinutes(5) });
        Assert.Equal(2, await Db.Scalar(rows));
        // A version change is journaled at once, whatever the interval.
        await Ask<CheckInDecision>(a, Clean(id, 4) with { Timestamp = T0.AddMinutes(5.5) });
        Assert.Equal(3, await Db.Scalar(rows));

        kit.Watch(a);
        a.Tell(Kill.Instance);
        kit.ExpectTerminated(a, Wait);
        var again = await Ask<DeviceState>(kit.Sys.ActorOf(DeviceActor.Props(id, settings)), new GetDeviceState(id));
        Assert.Equal((3L, 4L, T0.AddMinutes(5.5)), (again.EventCount, again.InstalledVersionId, again.LastSeen!.Value));
    }

    [BackendFact]
    public async Task A_new_actor_system_on_the_same_database_recovers_every_device()
    {
        var first = await NewKit();
        var states = new Dictionary<string, string>();
        for (var i = 0; i < 5; i++)
        {
            var id = $"dev-r{i}";
            var a = first.Sys.ActorOf(DeviceActor.Props(id, Settings(snapshotEvery: 2)));
            await RunUpgradeWithOneFailure(a, id);
            states[id] = Json(await Ask<DeviceState>(a, new GetDeviceState(id)));
        }
        await first.Sys.Terminate();

        var second = await NewKit();
        foreach (var (id, json) in states)
        {
            var a = second.Sys.ActorOf(DeviceActor.Props(id, Settings(snapshotEvery: 2)));
            Assert.Equal(json, Json(await Ask<DeviceState>(a, new GetDeviceState(id))));
        }
    }

    [BackendFact]
    public async Task Snapshots_are_taken_every_n_events_and_older_ones_deleted()
    {
        var kit = await NewKit();
        const string id = "dev-snap";
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings(snapshotEvery: 3)));
        for (var i = 1; i <= 10; i++)
            await Ask<DeviceCommandAccepted>(a, new RegisterDevice(id, "acme", [$"t{i}"], T0));
        await kit.AwaitAssertAsync(async () =>
        {
            Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM snapshot WHERE persistence_id = '{Pid(id)}'"));
            // One save in flight at a time; a snapshot that fell due meanwhile is taken when it settles, at the then-last
            // event (e.g. 7 or 8 when the save at 3 was still running at 6). So the newest snapshot is never more than
            // snapshotEvery - 1 events behind the last one: 8, 9 or 10.
            Assert.InRange(await Db.Scalar($"SELECT MAX(sequence_number) FROM snapshot WHERE persistence_id = '{Pid(id)}'"), 8L, 10L);
        }, Wait, TimeSpan.FromMilliseconds(100));
        Assert.Equal(10, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));

        kit.Watch(a);
        a.Tell(PoisonPill.Instance);
        kit.ExpectTerminated(a, Wait);
        var again = kit.Sys.ActorOf(DeviceActor.Props(id, Settings(snapshotEvery: 3)));
        var s = await Ask<DeviceState>(again, new GetDeviceState(id));
        Assert.Equal(["t10"], s.Tags);
        Assert.Equal(10, s.EventCount);
    }

    [BackendFact]
    public async Task Rejected_commands_persist_nothing()
    {
        var kit = await NewKit();
        const string id = "dev-reject";
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        await Ask<CheckInDecision>(a, Clean(id, 3));
        var r = await Ask<DeviceCommandRejected>(a, new ReportProgress(id, 4, WorkPhase.Download, 1, 2, 1, 2, T0));
        Assert.Equal("no_active_work", r.Code);
        Assert.Equal("no_active_work", (await Ask<DeviceCommandRejected>(a, new ReportCompletion(id, 4, "x", T0))).Code);
        await Ask<DeviceCommandAccepted>(a, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"));
        Assert.Equal("stale_target", (await Ask<DeviceCommandRejected>(a, new ReportFailure(id, 5, WorkPhase.Download, "x", 1, T0))).Code);
        Assert.Equal("product_mismatch", (await Ask<DeviceCommandRejected>(a, new AssignTarget(id, "other", "4.0", 4, "m", "r2"))).Code);
        Assert.Equal(2, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
    }

    [BackendFact]
    public async Task Repair_names_exactly_the_differing_files_and_survives_recovery()
    {
        var kit = await NewKit();
        const string id = "dev-repair";
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        var d = await Ask<CheckInDecision>(a, new CheckIn(id, "acme", 3, "d-bad", "d-ok", "3.0", "manifests/acme/3.json", ["bin/app", "etc/x.conf"], "1.0", T0));
        Assert.Equal(UpdateAction.Repair, d.Action);
        Assert.Equal(["bin/app", "etc/x.conf"], d.RepairFiles);
        Assert.Equal(DeviceStatus.Repairing, (await Ask<DeviceCommandAccepted>(a, new ReportProgress(id, 3, WorkPhase.Download, 1, 2, 1, 2, T0))).Status);
        kit.Watch(a);
        a.Tell(Kill.Instance);
        kit.ExpectTerminated(a, Wait);
        var again = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        var s = await Ask<DeviceState>(again, new GetDeviceState(id));
        Assert.Equal(DeviceStatus.Repairing, s.Status);
        Assert.Equal(["bin/app", "etc/x.conf"], s.Work!.RepairFiles);
        Assert.Equal(DeviceStatus.Completed, (await Ask<DeviceCommandAccepted>(again, new ReportCompletion(id, 3, "d-ok", T0))).Status);
    }

    [BackendFact]
    public async Task Each_check_in_restarts_the_silence_period()
    {
        var kit = await NewKit();
        const string id = "dev-chatty";
        var offlineAfter = TimeSpan.FromSeconds(3); // check-ins every 200 ms: a 2.8 s stall of a loaded machine would be needed to fail it
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, Settings(offlineSeconds: offlineAfter.TotalSeconds)));
        // Checking in for 2.5 silence periods: the timer armed at the first check-in fires in between and must re-arm.
        var until = DateTime.UtcNow + offlineAfter * 2.5;
        while (DateTime.UtcNow < until)
        {
            await Ask<CheckInDecision>(a, Clean(id, 3));
            Assert.NotEqual(DeviceStatus.Offline, (await Ask<DeviceState>(a, new GetDeviceState(id))).Status);
            await Task.Delay(200);
        }
        // Taken before the check-in is sent: the actor restarts its silence period after this, never before.
        var lastCheckIn = DateTime.UtcNow;
        await Ask<CheckInDecision>(a, Clean(id, 3));
        await kit.AwaitAssertAsync(async () =>
            Assert.Equal(DeviceStatus.Offline, (await Ask<DeviceState>(a, new GetDeviceState(id))).Status), Wait, TimeSpan.FromMilliseconds(50));
        Assert.True(DateTime.UtcNow - lastCheckIn >= offlineAfter - TimeSpan.FromMilliseconds(50),
            $"went offline {(DateTime.UtcNow - lastCheckIn).TotalMilliseconds:F0} ms after the last check-in, before the {offlineAfter.TotalMilliseconds} ms silence period");
    }

    [BackendFact]
    public async Task Silent_device_goes_offline_and_resumes_where_it_was()
    {
        var kit = await NewKit();
        const string id = "dev-silent";
        var settings = Settings(offlineSeconds: 0.5);
        var a = kit.Sys.ActorOf(DeviceActor.Props(id, settings));
        await Ask<DeviceCommandAccepted>(a, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"));
        await Ask<CheckInDecision>(a, Clean(id, 3));
        await Ask<DeviceCommandAccepted>(a, new ReportProgress(id, 4, WorkPhase.Download, 40, 100, 4, 10, T0));
        await kit.AwaitAssertAsync(async () =>
        {
            var s = await Ask<DeviceState>(a, new GetDeviceState(id));
            Assert.Equal(DeviceStatus.Offline, s.Status);
            Assert.Equal(DeviceStatus.Downloading, s.StatusBeforeOffline);
        }, Wait, TimeSpan.FromMilliseconds(100));

        // Recovery keeps Offline (the actor may be gone after passivation; a new incarnation reads the journal).
        kit.Watch(a);
        a.Tell(Kill.Instance);
        kit.ExpectTerminated(a, Wait);
        var again = kit.Sys.ActorOf(DeviceActor.Props(id, Settings()));
        Assert.Equal(DeviceStatus.Offline, (await Ask<DeviceState>(again, new GetDeviceState(id))).Status);
        Assert.Equal(DeviceStatus.Downloading, (await Ask<DeviceCommandAccepted>(again, new ReportProgress(id, 4, WorkPhase.Download, 60, 100, 6, 10, T0))).Status);
        var back = await Ask<DeviceState>(again, new GetDeviceState(id));
        Assert.Equal(60, back.Progress!.BytesDone);
        Assert.Null(back.StatusBeforeOffline);
    }
}

public sealed class SqliteDeviceActorTests(ITestOutputHelper output) : DeviceActorSuite<SqliteDeviceActorTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.Sqlite;
}

public sealed class PostgresDeviceActorTests(ITestOutputHelper output) : DeviceActorSuite<PostgresDeviceActorTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.PostgreSql;
}
