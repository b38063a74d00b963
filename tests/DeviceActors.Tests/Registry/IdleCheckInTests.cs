using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.Registry;

/// <summary>
/// The idle fast path answers from the registry's compact row, without the actor. Whatever the device's history, when
/// it answers, the actor's own <see cref="DeviceStateMachine.Decide"/> on the full state would have answered the same
/// "nothing to do" and journaled nothing.
/// </summary>
public sealed class IdleCheckInTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DeviceActorSettings Settings = DeviceActorSettings.Default;
    private static readonly string[] NoFiles = [];

    [Fact]
    public void Whenever_the_row_answers_the_actor_would_answer_none_and_persist_nothing()
    {
        var rng = new Random(2201);
        var values = new RowValues();
        int answered = 0, actorHeartbeats = 0;
        for (var run = 0; run < 4000; run++)
        {
            var id = $"dev-{run}";
            var full = DeviceState.Initial(id);
            var row = new DeviceRow(id);
            var length = rng.Next(1, 10);
            var at = T0;
            for (var seq = 1; seq <= length; seq++)
            {
                at = T0.AddMinutes(seq);
                // Mostly quiet check-ins, so that many histories end idle.
                var e = rng.Next(3) == 0 ? DeviceRowTests.RandomEvent(rng, at)
                    : new DeviceCheckedIn("acme", 3, "d3", "1.0", UpdateAction.None, null, at, seq * 10);
                full = DeviceStateMachine.Apply(full, e, seq);
                row.Apply(e, seq, values);
            }
            for (var probe = 0; probe < 6; probe++)
            {
                var c = RandomCheckIn(rng, full, at);
                var fast = row.AnswerIdle(c, Settings.LastSeenPersistInterval);
                var outcome = DeviceStateMachine.Decide(full, c, Settings, new Random(1), c.Timestamp);
                var actorReply = outcome.Reply(full);
                if (outcome.Events.Count == 0 && actorReply is CheckInDecision { Action: UpdateAction.None }) actorHeartbeats++;
                if (fast is null) continue;
                answered++;
                var what = $"run {run} probe {probe}: {c}";
                Assert.True(outcome.Events.Count == 0, $"{what}: the actor would journal {string.Join(", ", outcome.Events.Select(x => x.GetType().Name))}");
                var decision = Assert.IsType<CheckInDecision>(actorReply);
                Assert.Equal(decision with { RepairFiles = NoFiles }, fast with { RepairFiles = NoFiles });
                Assert.Empty(fast.RepairFiles);
            }
        }
        // The property must not hold by answering nothing: most check-ins the actor takes as heartbeats are answered here.
        Assert.True(answered > actorHeartbeats / 2, $"fast path answered {answered} of {actorHeartbeats} heartbeats");
    }

    [Fact]
    public void A_row_answers_no_check_in_once_the_persisted_last_seen_is_due_however_long_ago_the_actor_heard_the_device()
    {
        var values = new RowValues();
        var row = IdleRow("dev-a", values);
        // The actor heard the device at T0 only; offline detection reads the fast path's sightings, so that is no limit.
        Assert.NotNull(row.AnswerIdle(IdleCheckIn(T0.AddMinutes(5), 100), TimeSpan.FromMinutes(60)));
        Assert.NotNull(row.AnswerIdle(IdleCheckIn(T0.AddMinutes(55), 101), TimeSpan.FromMinutes(60)));
        // An hour after the persisted last-seen the check-in must reach the actor, which journals it.
        Assert.Null(row.AnswerIdle(IdleCheckIn(T0.AddMinutes(60), 102), TimeSpan.FromMinutes(60)));
    }

    [Fact]
    public void The_table_answers_nothing_until_the_registry_caught_up_and_then_records_each_answer_as_a_sighting_to_carry()
    {
        var table = new DeviceRowTable();
        var row = table.GetOrAdd("dev-a");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, new RowValues());
        table.CarrySightings();

        // The row may still miss an order journaled before the node started: the actor answers.
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 100), TimeSpan.FromMinutes(10)));
        Assert.Null(table.LastSighted("dev-a"));
        Assert.Empty(table.TakePendingSightings());

        table.MarkCaughtUp();
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(5), 101), TimeSpan.FromMinutes(10)).Answer);
        Assert.Equal(T0.AddMinutes(5), table.LastSighted("dev-a"));
        Assert.Equal([("dev-a", T0.AddMinutes(5).UtcTicks)], table.TakePendingSightings());
        Assert.Empty(table.TakePendingSightings());

        // A sighting carried from another node raises the device's last contact, never lowers it.
        table.Sighted("dev-a", T0.AddMinutes(6).UtcTicks);
        table.Sighted("dev-a", T0.AddMinutes(2).UtcTicks);
        Assert.Equal(T0.AddMinutes(6), table.LastSighted("dev-a"));
    }

    [Fact]
    public void Sightings_of_devices_without_a_row_are_kept_until_the_row_exists_or_they_are_too_old_to_matter()
    {
        var table = new DeviceRowTable();
        table.Sighted("dev-x", T0.AddMinutes(3).UtcTicks);
        table.Sighted("dev-y", T0.AddMinutes(1).UtcTicks);
        Assert.Equal(T0.AddMinutes(3), table.LastSighted("dev-x"));
        // The registry folds the device's first event: the row takes the sighting over.
        table.GetOrAdd("dev-x");
        Assert.Equal(T0.AddMinutes(3), table.LastSighted("dev-x"));
        table.ForgetSightingsBefore(T0.AddMinutes(2));
        Assert.Null(table.LastSighted("dev-y"));
        Assert.Equal(T0.AddMinutes(3), table.LastSighted("dev-x"));
        // A registry that starts over keeps the sightings for its new rows, and is not caught up until it folded again.
        table.MarkCaughtUp();
        table.Clear();
        Assert.False(table.CaughtUp);
        Assert.Equal(T0.AddMinutes(3), table.LastSighted("dev-x"));
    }

    [Fact]
    public void The_fast_path_declines_while_the_sightings_waiting_to_be_carried_are_at_their_bound()
    {
        var table = new DeviceRowTable();
        var values = new RowValues();
        for (var i = 0; i <= DeviceRowTable.MaxPendingSightings; i++)
        {
            var row = table.GetOrAdd($"dev-{i}");
            foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, values);
        }
        table.MarkCaughtUp();
        table.CarrySightings();
        for (var i = 0; i < DeviceRowTable.MaxPendingSightings; i++)
            Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 100, $"dev-{i}"), TimeSpan.FromMinutes(10)).Answer);
        var last = $"dev-{DeviceRowTable.MaxPendingSightings}";
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 100, last), TimeSpan.FromMinutes(10)));
        Assert.Null(table.LastSighted(last));
        Assert.Equal(DeviceRowTable.MaxPendingSightings, table.TakePendingSightings().Count);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 100, last), TimeSpan.FromMinutes(10)).Answer);
    }

    [Fact]
    public void The_table_refuses_a_replay_of_a_check_in_it_answered_shows_the_device_seen_and_forgets_its_mark_on_a_sequence_reset()
    {
        var table = new DeviceRowTable();
        var values = new RowValues();
        var row = table.GetOrAdd("dev-a");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, values);
        table.MarkCaughtUp();

        var first = IdleCheckIn(T0.AddMinutes(4), 100);
        Assert.NotNull(table.TryAnswer(first, TimeSpan.FromMinutes(10)).Answer);
        Assert.Equal(T0.AddMinutes(4), row.ToSummary().LastSeen);
        var (answer, refused) = table.TryAnswer(IdleCheckIn(T0.AddMinutes(4.5), 100), TimeSpan.FromMinutes(10));
        Assert.Null(answer);
        Assert.Equal(DeviceRequestSequence.ReplayedCode, refused!.Code);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(5), 101), TimeSpan.FromMinutes(10)).Answer);

        // A rotated credential starts the device's sequence over: its low sequence numbers are new requests again.
        row.Apply(new RequestSequenceReset("credential rotated", T0.AddMinutes(6)), 3, values);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(7), 5), TimeSpan.FromMinutes(10)).Answer);
        // An unknown device is the actor's.
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(7), 6, "dev-b"), TimeSpan.FromMinutes(10)));
    }

    [Fact]
    public void A_check_in_the_actor_answered_is_not_answered_again_by_the_fast_path()
    {
        var table = new DeviceRowTable();
        var row = table.GetOrAdd("dev-a");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, new RowValues());
        table.MarkCaughtUp();

        // The actor answered sequence 200 without journaling it (its mark only in memory): a replay of that request
        // must not become a fast-path answer.
        table.AnsweredByActor("dev-a", T0.AddMinutes(4), 200);
        var (answer, refused) = table.TryAnswer(IdleCheckIn(T0.AddMinutes(4.5), 200), TimeSpan.FromMinutes(10));
        Assert.Null(answer);
        Assert.Equal(DeviceRequestSequence.ReplayedCode, refused!.Code);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(5), 201), TimeSpan.FromMinutes(10)).Answer);
    }

    [Fact]
    public void The_same_signed_check_in_arriving_many_times_at_once_is_answered_once()
    {
        // Many rounds: a copy that passes the replay check just before another copy's claim must still be refused,
        // never handed to the actor (which never saw the fast path's answer and would answer it again).
        for (var round = 0; round < 1000; round++)
        {
            var table = new DeviceRowTable();
            var row = table.GetOrAdd("dev-a");
            foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, new RowValues());
            table.MarkCaughtUp();

            var copy = IdleCheckIn(T0.AddMinutes(4), 300);
            var answers = 0;
            var refusals = 0;
            Parallel.For(0, 64, _ =>
            {
                var (answer, refused) = table.TryAnswer(copy, TimeSpan.FromMinutes(10));
                if (answer is not null) Interlocked.Increment(ref answers);
                if (refused is not null) Interlocked.Increment(ref refusals);
            });
            Assert.Equal(1, answers);
            Assert.Equal(63, refusals);
        }
    }

    [Fact]
    public void A_row_below_its_devices_journal_mark_declines_until_the_registry_folds_the_marked_events()
    {
        var table = new DeviceRowTable();
        var values = new RowValues();
        var row = table.GetOrAdd("dev-a");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, values);
        table.MarkCaughtUp();
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(1), 100), TimeSpan.FromMinutes(10)).Answer);

        // The actor acknowledged an assignment (event 3) the registry has not folded: the row is left to the actor.
        table.Journaled("dev-a", 3, sequenceReset: false);
        Assert.True(row.Behind);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(2), 101), TimeSpan.FromMinutes(10)));
        // A mark never goes down: an older one arriving late changes nothing.
        table.JournaledElsewhere("dev-a", 2, sequenceReset: false);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(2), 102), TimeSpan.FromMinutes(10)));

        // Folded, the assignment itself keeps the device with its actor (the release it should run is not the one it runs).
        row.Apply(new TargetAssigned(new TargetAssignment("acme", "4.0", 4, "m4", "r1"), T0.AddMinutes(2)), 3, values);
        Assert.False(row.Behind);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(3), 103), TimeSpan.FromMinutes(10)));

        // A mark from another node's actor (a heartbeat it journaled, event 4) holds the row back the same way until folded.
        var other = table.GetOrAdd("dev-b");
        foreach (var (e, seq) in IdleHistory()) other.Apply(e, seq, values);
        table.JournaledElsewhere("dev-b", 3, sequenceReset: false);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(3), 100, "dev-b"), TimeSpan.FromMinutes(10)));
        other.Apply(new DeviceCheckedIn("acme", 3, "d3", "1.0", UpdateAction.None, null, T0.AddMinutes(3), 100), 3, values);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 101, "dev-b"), TimeSpan.FromMinutes(10)).Answer);
    }

    [Fact]
    public void A_journal_mark_before_the_devices_row_exists_is_taken_by_the_row_and_outlives_a_registry_restart()
    {
        var table = new DeviceRowTable();
        var values = new RowValues();
        table.Clear(); // a registry folds into this table
        table.Journaled("dev-x", 3, sequenceReset: false);
        var row = table.GetOrAdd("dev-x");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, values);
        table.MarkCaughtUp();
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(1), 100, "dev-x"), TimeSpan.FromMinutes(10)));
        row.Apply(new DeviceCheckedIn("acme", 3, "d3", "1.0", UpdateAction.None, null, T0.AddMinutes(1), 100), 3, values);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(2), 101, "dev-x"), TimeSpan.FromMinutes(10)).Answer);

        // The registry starts over: its new row folds from the journal's beginning and must pass the mark again.
        table.Clear();
        var again = table.GetOrAdd("dev-x");
        foreach (var (e, seq) in IdleHistory()) again.Apply(e, seq, values);
        table.MarkCaughtUp();
        Assert.True(again.Behind);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(3), 102, "dev-x"), TimeSpan.FromMinutes(10)));
        again.Apply(new DeviceCheckedIn("acme", 3, "d3", "1.0", UpdateAction.None, null, T0.AddMinutes(1), 100), 3, values);
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(4), 103, "dev-x"), TimeSpan.FromMinutes(10)).Answer);

        // A table no registry folds into keeps no marks of devices it has no row for (nothing would ever take them).
        var bare = new DeviceRowTable();
        bare.Journaled("dev-y", 5, sequenceReset: false);
        Assert.False(bare.GetOrAdd("dev-y").Behind);
    }

    [Fact]
    public void This_nodes_journal_marks_wait_for_the_carry_which_is_woken_once_per_take_and_marks_from_elsewhere_are_not_carried_again()
    {
        var table = new DeviceRowTable();
        var wakes = 0;
        table.Journaled("dev-a", 1, sequenceReset: false); // before a carry exists: this node's rows only
        Assert.Empty(table.TakePendingMarks());
        table.CarryMarks(() => wakes++);
        table.Journaled("dev-a", 2, sequenceReset: false);
        table.Journaled("dev-b", 7, sequenceReset: true);
        table.JournaledElsewhere("dev-c", 4, sequenceReset: false);
        Assert.Equal(1, wakes);
        Assert.Equal([("dev-a", 2L, false), ("dev-b", 7L, true)], table.TakePendingMarks());
        Assert.Empty(table.TakePendingMarks());
        table.Journaled("dev-a", 3, sequenceReset: false);
        Assert.Equal(2, wakes);
    }

    [Fact]
    public void A_sequence_reset_mark_voids_the_fast_paths_replay_mark_at_once_and_leaves_the_device_to_its_actor()
    {
        var table = new DeviceRowTable();
        var row = table.GetOrAdd("dev-a");
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, new RowValues());
        table.MarkCaughtUp();
        Assert.NotNull(table.TryAnswer(IdleCheckIn(T0.AddMinutes(1), 100), TimeSpan.FromMinutes(10)).Answer);

        // The credential was rotated (event 3, not folded): the device's new low sequence numbers are not replays, and
        // the actor, which knows of the reset, answers them.
        table.JournaledElsewhere("dev-a", 3, sequenceReset: true);
        Assert.Equal((null, null), table.TryAnswer(IdleCheckIn(T0.AddMinutes(2), 5), TimeSpan.FromMinutes(10)));
    }

    private static IEnumerable<(IDeviceEvent, long)> IdleHistory() =>
    [
        (new DeviceRegistered("acme", [], T0), 1),
        (new DeviceCheckedIn("acme", 3, "d3", "1.0", UpdateAction.None, null, T0, 10), 2),
    ];

    private static DeviceRow IdleRow(string id, RowValues values)
    {
        var row = new DeviceRow(id);
        foreach (var (e, seq) in IdleHistory()) row.Apply(e, seq, values);
        return row;
    }

    private static CheckIn IdleCheckIn(DateTimeOffset at, long seq, string deviceId = "dev-a") =>
        new(deviceId, "acme", 3, "d3", "d3", "3.0", "m3", [], "1.0", at, seq);

    // A check-in close to what the device last reported, so that many are heartbeats and each field differs sometimes.
    private static CheckIn RandomCheckIn(Random rng, DeviceState s, DateTimeOffset last)
    {
        var installed = rng.Next(6) == 0 ? rng.Next(2, 6) : s.InstalledVersionId == 0 ? 3 : s.InstalledVersionId;
        var digest = rng.Next(6) == 0 ? "d9" : s.InventoryDigest ?? $"d{installed}";
        var repair = rng.Next(8) == 0;
        var expected = repair ? "d-expected" : rng.Next(2) == 0 ? digest : null;
        var agent = rng.Next(8) switch { 0 => null, 1 => "2.0", _ => "1.0" };
        var channels = rng.Next(4) switch
        {
            0 => null,
            1 => new[] { new ChannelTarget("stable", new ChannelRelease($"{installed}.0", installed, $"m{installed}"), []) },
            2 => [new ChannelTarget("stable", new ChannelRelease("4.0", 4, "m4"), rng.Next(2) == 0 ? ["r1"] : [])],
            _ => [new ChannelTarget("beta", new ChannelRelease("5.0", 5, "m5"), []), new ChannelTarget("stable", null, ["r2"])],
        };
        IReadOnlyDictionary<string, string>? attributes = rng.Next(5) switch
        {
            0 => new Dictionary<string, string> { ["site"] = "eu", ["model"] = "x1" },
            1 => s.ReportedAttributes,
            _ => null,
        };
        var seq = Math.Max(1, s.LastRequestSequence + rng.Next(-3, 30));
        return new CheckIn(s.DeviceId, rng.Next(12) == 0 ? "other" : "acme", installed, digest, expected, expected is null ? null : $"{installed}.0",
            expected is null ? null : $"m{installed}", repair ? ["a.txt"] : [], agent, last.AddMinutes(rng.Next(0, 14)), seq, channels,
            rng.Next(6) == 0 ? !s.Stale : s.Stale, attributes);
    }
}
