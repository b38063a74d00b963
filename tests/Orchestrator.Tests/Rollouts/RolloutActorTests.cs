using Akka.Actor;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Rollouts;
using Orchestrator.Node.Tests.Support;
using Xunit.Abstractions;
using static Orchestrator.Node.Tests.Rollouts.RolloutHarness;

namespace Orchestrator.Node.Tests.Rollouts;

/// <summary>Rollouts over real sharded device actors on SQLite (TestKit, serialize-messages on).</summary>
public sealed class RolloutActorTests(ITestOutputHelper output) : IAsyncLifetime
{
    private RolloutHarness _h = null!;

    public async Task InitializeAsync() => _h = await RolloutHarness.StartAsync(output);

    public async Task DisposeAsync() => await _h.DisposeAsync();

    internal static List<string> Ids(string prefix, int n) => Enumerable.Range(0, n).Select(i => $"{prefix}-{i:D2}").ToList();

    [Fact]
    public async Task Full_rollout_advances_wave_by_wave_within_the_concurrency_cap_and_takes_late_joiners()
    {
        var eu = Ids("eu", 40);
        await _h.Register(eu, "eu");
        await _h.Register(Ids("us", 5), "us");
        await _h.AwaitRegistry(45);
        var created = await _h.Create(Spec("full", Tags("eu"),
            [new WaveSpec(WaveSizeKind.Count, 4), new WaveSpec(WaveSizeKind.Percent, 50), new WaveSpec(WaveSizeKind.Percent, 100)], maxConcurrent: 8));
        Assert.Equal([4, 20, 16], created.Waves.Select(w => w.Total));

        // While wave 1 is in flight (no agent reports yet), a device registered after the start joins the last wave.
        await _h.Until("full", v => v.Waves[0].InProgress == 4);
        await _h.Register(["eu-late"], "eu", "new");
        var joined = await _h.Until("full", v => v.Waves[2].Total == 17);
        Assert.Equal((RolloutStatus.Running, 1, 17), (joined.Status, joined.CurrentWave, joined.Waves[2].Pending));

        var fleet = new Fleet(_h, [.. eu, "eu-late"]);
        using var stop = new CancellationTokenSource();
        var agents = fleet.RunAsync(stop.Token);
        var maxInFlight = 0;
        var sawLaterWaveBeforeFirstDone = false;
        var done = await _h.Until("full", v => v.Status == RolloutStatus.Completed, v =>
        {
            maxInFlight = Math.Max(maxInFlight, v.Waves.Sum(w => w.InProgress));
            if (v.Waves[0].Succeeded < 4 && v.Waves.Skip(1).Any(w => w.InProgress + w.Succeeded > 0)) sawLaterWaveBeforeFirstDone = true;
        });
        await stop.CancelAsync();
        await agents;

        Assert.Equal([4, 20, 17], done.Waves.Select(w => w.Total));
        Assert.All(done.Waves, w => Assert.Equal((0, 0, 0), (w.Pending, w.InProgress, w.Failed)));
        Assert.Equal(41, done.Waves.Sum(w => w.Succeeded));
        Assert.InRange(maxInFlight, 1, 8);
        Assert.False(sawLaterWaveBeforeFirstDone);
        foreach (var id in eu.Append("eu-late"))
        {
            var s = await _h.Device(id);
            Assert.Equal((2L, "full"), (s.InstalledVersionId, s.Target?.RolloutId));
        }
        foreach (var id in Ids("us", 5)) Assert.Null((await _h.Device(id)).Target);
    }

    [Fact]
    public async Task Error_threshold_pauses_with_the_reason_then_retry_failed_and_resume_complete_it()
    {
        var ids = Ids("err", 10);
        await _h.Register(ids, "lab");
        await _h.AwaitRegistry(10);
        await _h.Create(Spec("err", Tags("lab"), [new WaveSpec(WaveSizeKind.Count, 5), new WaveSpec(WaveSizeKind.Percent, 100)],
            error: 0.2, maxAttempts: 2));
        var fleet = new Fleet(_h, ids);
        fleet.Fails.UnionWith(["err-00", "err-01", "err-02"]);
        using var stop = new CancellationTokenSource();
        var agents = fleet.RunAsync(stop.Token);

        var paused = await _h.Until("err", v => v.Status == RolloutStatus.Paused);
        Assert.Contains("error threshold", paused.PauseReason);
        Assert.Contains("(system)", paused.PauseReason);
        // No device of wave 2 was touched, and the failed ones no longer retry (their assignment was cancelled).
        Assert.Equal((5, 0, 0), (paused.Waves[1].Pending, paused.Waves[1].InProgress, paused.Waves[1].Succeeded));
        var failures = paused.Failures.Where(f => f.DeviceId is "err-00" or "err-01" or "err-02").ToList();
        Assert.NotEmpty(failures);
        Assert.All(failures, f => Assert.Matches(@"gave up after ([2-9]|\d\d+) failed attempts", f.Reason)); // the retry policy allows 2
        foreach (var f in failures) Assert.Null((await _h.Device(f.DeviceId)).Target);

        // Paused means paused: nothing new is assigned while the agents keep checking in.
        await Task.Delay(400);
        var still = await _h.Show("err");
        Assert.Equal(RolloutStatus.Paused, still.Status);
        Assert.Equal(5, still.Waves[1].Pending);

        fleet.Fails.Clear();
        var retried = await _h.Ask<RolloutView>(new RetryFailedDevices("err", "alice"));
        Assert.Equal(0, retried.Waves[0].Failed);
        Assert.Equal("no_failed_devices", (await _h.Ask<RolloutRejected>(new RetryFailedDevices("err", "alice"))).Code);
        var resumed = await _h.Ask<RolloutView>(new ResumeRollout("err", "alice"));
        Assert.Equal(RolloutStatus.Running, resumed.Status);
        var done = await _h.Until("err", v => v.Status == RolloutStatus.Completed);
        await stop.CancelAsync();
        await agents;
        Assert.Equal(10, done.Waves.Sum(w => w.Succeeded));
        Assert.Equal(0, done.Waves.Sum(w => w.Failed));
    }

    [Fact]
    public async Task Abort_cancels_unfinished_assignments_and_leaves_unassigned_devices_alone()
    {
        var ids = Ids("ab", 8);
        await _h.Register(ids, "ab");
        await _h.AwaitRegistry(8);
        // The agents never check in, so the first three devices stay in flight.
        await _h.Create(Spec("ab", Tags("ab"), maxConcurrent: 3));
        var running = await _h.Until("ab", v => v.Waves[0].InProgress == 3);
        Assert.Equal(5, running.Waves[0].Pending);
        var assigned = new List<string>();
        foreach (var id in ids)
            if ((await _h.Device(id)).Target?.RolloutId == "ab") assigned.Add(id);
        Assert.Equal(3, assigned.Count);

        var aborted = await _h.Ask<RolloutView>(new AbortRollout("ab", "alice", "bad build"));
        Assert.Equal(RolloutStatus.Aborted, aborted.Status);
        Assert.Contains("bad build (alice)", aborted.PauseReason);
        var delivered = await _h.Until("ab", v => !v.CommandsPending);
        Assert.Equal((5, 0, 3), (delivered.Waves[0].Pending, delivered.Waves[0].InProgress, delivered.Waves[0].Failed));
        foreach (var id in ids)
        {
            var s = await _h.Device(id);
            Assert.Null(s.Target);
            Assert.Null(s.Work);
        }
        // An aborted rollout refuses further operator commands except rollback, with a clear reason.
        var refused = await _h.Ask<RolloutRejected>(new ResumeRollout("ab", "alice"));
        Assert.Equal("invalid_state", refused.Code);
        Assert.Contains("Allowed now: orch rollout rollback", refused.Message);
        // Its devices are free again: a new rollout may take them.
        var next = await _h.Create(Spec("ab-2", Tags("ab")));
        Assert.Equal(8, next.Waves[0].Total);
    }

    [Fact]
    public async Task Rollback_assigns_each_touched_device_its_previous_version()
    {
        var ids = Ids("rb", 6);
        await _h.Register(ids, "rb");
        await _h.AwaitRegistry(6);
        await _h.Create(Spec("rb", Tags("rb")));
        var fleet = new Fleet(_h, ids);
        using var stop = new CancellationTokenSource();
        var agents = fleet.RunAsync(stop.Token);
        await _h.Until("rb", v => v.Status == RolloutStatus.Completed);
        Assert.All(ids, id => Assert.Equal(2, fleet.Installed(id)));

        var rolledBack = await _h.Ask<RolloutView>(new RollbackRollout("rb", "alice", "regression", [V1, new RollbackVersion(2, "2.0.0", V2.ManifestPath)]));
        Assert.Equal(RolloutStatus.RolledBack, rolledBack.Status);
        await _h.Until("rb", v => !v.CommandsPending);
        await Kit().AwaitAssertAsync(() => Assert.All(ids, id => Assert.Equal(1, fleet.Installed(id))), Wait, TimeSpan.FromMilliseconds(100));
        await stop.CancelAsync();
        await agents;
        foreach (var id in ids)
        {
            var s = await _h.Device(id);
            Assert.Equal((1L, 1L, "rb"), (s.InstalledVersionId, s.Target!.VersionId, s.Target.RolloutId));
        }
        Assert.Equal("invalid_state", (await _h.Ask<RolloutRejected>(new RollbackRollout("rb", "alice", "again", [V1]))).Code);
    }

    [Fact]
    public async Task An_uncapped_rollback_waits_for_a_slow_device_instead_of_giving_it_up()
    {
        var ids = Ids("rs", 3);
        await _h.Register(ids, "rs");
        await _h.AwaitRegistry(3);
        await _h.Create(Spec("rs", Tags("rs"), maxAttempts: 0));
        var fleet = new Fleet(_h, ids);
        using (var stop = new CancellationTokenSource())
        {
            var agents = fleet.RunAsync(stop.Token);
            await _h.Until("rs", v => v.Status == RolloutStatus.Completed);
            await stop.CancelAsync();
            await agents;
        }

        // The devices are offline when the rollback comes: several observation passes find them still on 2.0.
        await _h.Ask<RolloutView>(new RollbackRollout("rs", "alice", "regression", [V1]));
        await _h.Until("rs", v => !v.CommandsPending);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var waiting = await _h.Until("rs", _ => true);
        Assert.Equal(0, waiting.Rollback!.Failed);
        foreach (var id in ids) Assert.Equal((1L, true), ((await _h.Device(id)).Target!.VersionId, (await _h.Device(id)).Target!.Downgrade));

        using var resume = new CancellationTokenSource();
        var back = fleet.RunAsync(resume.Token);
        await _h.Until("rs", v => v.Rollback!.Restored == 3);
        await resume.CancelAsync();
        await back;
    }

    private Akka.TestKit.Xunit2.TestKit Kit() => _h.Kit;

    [Fact]
    public Task Counters_stay_exact_across_a_crash_of_the_rollout_actor_and_of_the_whole_node() => CrashScenario(_h);

    /// <summary>Kill the rollout actor mid-wave 1, crash the whole node mid-wave 2; counters and devices end exact (also run on PostgreSQL).</summary>
    internal static async Task CrashScenario(RolloutHarness h)
    {
        var ids = Ids("cr", 30);
        await h.Register(ids, "cr");
        await h.AwaitRegistry(30);
        await h.Create(Spec("cr", Tags("cr"), [new WaveSpec(WaveSizeKind.Count, 10), new WaveSpec(WaveSizeKind.Percent, 100)], maxConcurrent: 4));
        var fleet = new Fleet(h, ids);
        using var stop = new CancellationTokenSource();
        var agents = fleet.RunAsync(stop.Token);

        // Mid-wave: kill the rollout actor (its supervisor restarts it; it recovers from the journal and snapshots).
        await h.Until("cr", v => v.Waves[0].Succeeded >= 3);
        h.Kit.Sys.ActorSelection($"/user/{RolloutHosting.ManagerName}/coordinator/rollout-cr").Tell(Kill.Instance);
        // Mid-wave 2: the whole node goes away and a new one starts on the same database.
        await h.Until("cr", v => v.CurrentWave == 2 && v.Waves[1].Succeeded >= 2);
        await h.RestartAsync();
        var done = await h.Until("cr", v => v.Status == RolloutStatus.Completed);
        await stop.CancelAsync();
        await agents;

        Assert.Equal([10, 20], done.Waves.Select(w => w.Total));
        Assert.Equal([10, 20], done.Waves.Select(w => w.Succeeded));
        Assert.All(done.Waves, w => Assert.Equal(0, w.Pending + w.InProgress + w.Failed));
        foreach (var id in ids) Assert.Equal(2, (await h.Device(id)).InstalledVersionId);
    }

    [Fact]
    public async Task A_selection_larger_than_the_registry_query_limit_is_refused_not_truncated()
    {
        await using var small = await RolloutHarness.StartAsync(output, registryQueryLimit: 3);
        await small.Register(Ids("lim", 4), "lim");
        await small.AwaitRegistry(4);
        var refused = await small.Ask<RolloutRejected>(new CreateRollout(Spec("too-many", Tags("lim"))));
        Assert.Equal("registry_limit", refused.Code);
        Assert.Contains("4 devices match, more than the device registry query limit of 3", refused.Message);
        Assert.Contains("Devices:RegistryQueryLimit", refused.Message);
        Assert.Empty((await small.Ask<RolloutList>(new ListRollouts(true))).Rollouts);
        foreach (var id in Ids("lim", 4)) Assert.Null((await small.Device(id)).Target);
    }

    [Fact]
    public async Task Bad_commands_are_rejected_with_the_field_and_change_nothing()
    {
        await _h.Register(Ids("bad", 4), "bad");
        await _h.AwaitRegistry(4);
        async Task<RolloutRejected> Reject(RolloutSpec spec) => await _h.Ask<RolloutRejected>(new CreateRollout(spec));

        var empty = await Reject(Spec("e1", new DeviceSelector([], [], [])));
        Assert.Equal(("invalid_request", "selector"), (empty.Code, empty.Field));
        var errorThreshold = await Reject(Spec("e2", Tags("bad"), error: 1.5));
        Assert.Equal("errorThreshold", errorThreshold.Field);
        Assert.Contains("1.5", errorThreshold.Message);
        Assert.Equal("successThreshold", (await Reject(Spec("e3", Tags("bad"), success: 0))).Field);
        Assert.Equal("waves[0].percent", (await Reject(Spec("e4", Tags("bad"), [new WaveSpec(WaveSizeKind.Percent, 120)]))).Field);
        Assert.Equal("maxConcurrent", (await Reject(Spec("e5", Tags("bad"), maxConcurrent: 0))).Field);
        Assert.Equal("rolloutId", (await Reject(Spec("Bad Id", Tags("bad")))).Field);
        Assert.Equal("deviceTimeoutSeconds", (await Reject(Spec("e6", Tags("bad"), deviceTimeout: -1))).Field);

        // A second rollout that overlaps an active one (here through an explicit id) is refused, naming the owner.
        await _h.Create(Spec("first", Tags("bad"), startAt: DateTimeOffset.UtcNow.AddDays(1)));
        var conflict = await Reject(Spec("second", new DeviceSelector([], ["bad-02"], [])));
        Assert.Equal(("conflicting_rollout", "selector"), (conflict.Code, conflict.Field));
        Assert.Contains("first", conflict.Message);
        Assert.Contains("bad-02", conflict.Message);
        Assert.Equal("already_exists", (await Reject(Spec("first", Tags("other")))).Code);
        Assert.Equal("not_found", (await _h.Ask<RolloutRejected>(new PauseRollout("nope", "alice", "x"))).Code);
        Assert.Equal("invalid_state", (await _h.Ask<RolloutRejected>(new ResumeRollout("first", "alice"))).Code);
        Assert.Equal("invalid_state", (await _h.Ask<RolloutRejected>(new RetryFailedDevices("first", "alice"))).Code);

        // Nothing of the rejected ones exists, and "first" (start time tomorrow) assigned nothing.
        var list = await _h.Ask<RolloutList>(new ListRollouts(true));
        Assert.Equal(["first"], list.Rollouts.Select(r => r.RolloutId));
        var first = await _h.Show("first");
        Assert.Equal(RolloutStatus.Created, first.Status);
        Assert.Equal(4, first.Waves[0].Pending);
        foreach (var id in Ids("bad", 4)) Assert.Null((await _h.Device(id)).Target);

        // The list is answered from the summaries the rollouts publish after each durable change: a list sent after an
        // operator's decision was answered already shows it, and the summaries are published again after a crash.
        Assert.Equal(RolloutStatus.Paused, (await _h.Ask<RolloutView>(new PauseRollout("first", "alice", "hold"))).Status);
        Assert.Equal(RolloutStatus.Paused, Assert.Single((await _h.Ask<RolloutList>(new ListRollouts(true))).Rollouts).Status);

        // After a node crash the coordinator rebuilds the claims from its rollouts before accepting a new one.
        await _h.RestartAsync();
        var again = await Reject(Spec("second", new DeviceSelector([], ["bad-03"], [])));
        Assert.Equal("conflicting_rollout", again.Code);
        Assert.Equal(RolloutStatus.Paused, (await _h.Show("first")).Status);
        Assert.Equal(RolloutStatus.Paused, Assert.Single((await _h.Ask<RolloutList>(new ListRollouts(false))).Rollouts).Status);
    }

    [Fact]
    public async Task Nothing_is_assigned_before_the_start_time_or_outside_the_maintenance_window()
    {
        var clock = new ManualClock(T0); // 12:00 UTC
        await using var h = await RolloutHarness.StartAsync(output, clock);
        var ids = Ids("win", 3);
        await h.Register(ids, "win");
        await h.AwaitRegistry(3);
        await h.Create(Spec("win", Tags("win"), startAt: T0.AddHours(1), window: new MaintenanceWindow(14 * 60, 15 * 60)));

        async Task<bool> AnyAssigned() => (await Task.WhenAll(ids.Select(h.Device))).Any(s => s.Target is not null);
        await Task.Delay(500); // several polls
        var created = await h.Show("win");
        Assert.Equal((RolloutStatus.Created, 3), (created.Status, created.Waves[0].Pending));
        Assert.False(await AnyAssigned());

        clock.Set(T0.AddMinutes(90)); // 13:30: started, but the window opens at 14:00
        await h.Until("win", v => v.Status == RolloutStatus.Running);
        await Task.Delay(500);
        Assert.Equal(3, (await h.Show("win")).Waves[0].Pending);
        Assert.False(await AnyAssigned());

        clock.Set(T0.AddMinutes(130)); // 14:10
        var assigned = await h.Until("win", v => v.Waves[0].InProgress == 3);
        Assert.Equal(0, assigned.Waves[0].Pending);
        Assert.True(await AnyAssigned());
    }

    [Fact]
    public async Task A_device_silent_past_the_device_timeout_fails_and_frees_its_slot()
    {
        var clock = new ManualClock(T0);
        await using var h = await RolloutHarness.StartAsync(output, clock);
        var ids = Ids("to", 4);
        await h.Register(ids, "to");
        await h.AwaitRegistry(4);
        await h.Create(Spec("to", Tags("to"), maxConcurrent: 2, success: 0.5, deviceTimeout: 600));
        var first = await h.Until("to", v => v.Waves[0].InProgress == 2);
        Assert.Equal(2, first.Waves[0].Pending);

        // Just inside the timeout nothing happens: the silent devices keep their slots.
        clock.Set(T0.AddSeconds(590));
        await Task.Delay(500); // several polls
        Assert.Equal((2, 0), ((await h.Show("to")).Waves[0].InProgress, (await h.Show("to")).Waves[0].Failed));

        clock.Set(T0.AddSeconds(601));
        var timedOut = await h.Until("to", v => v.Waves[0].Failed == 2 && v.Waves[0].InProgress == 2);
        Assert.Equal(0, timedOut.Waves[0].Pending);
        Assert.All(timedOut.Failures, f => Assert.Matches(@"^did not install 2\.0\.0 within 00:10:00 of its assignment \((last seen|never checked in)", f.Reason));
        // The timed-out devices no longer carry the assignment, so counters stay exact when they come back.
        foreach (var f in timedOut.Failures) Assert.Null((await h.Device(f.DeviceId)).Target);

        var late = timedOut.Failures.Select(f => f.DeviceId).ToHashSet();
        var fleet = new Fleet(h, ids.Where(id => !late.Contains(id)).ToList());
        using var stop = new CancellationTokenSource();
        var agents = fleet.RunAsync(stop.Token);
        var done = await h.Until("to", v => v.Status == RolloutStatus.Completed);
        await stop.CancelAsync();
        await agents;
        Assert.Equal((2, 2), (done.Waves[0].Succeeded, done.Waves[0].Failed));
    }

    [Fact]
    public async Task Queries_are_answered_while_a_pass_waits_on_devices_that_do_not_answer()
    {
        // Devices and registry that never answer: every pass waits the full ask timeout, as on a huge, slow fleet.
        var devices = _h.Kit.CreateTestProbe();
        var registry = _h.Kit.CreateTestProbe();
        var coordinator = _h.Kit.CreateTestProbe();
        var settings = new RolloutSettings(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(20), TimeSpan.FromHours(1), 20, TimeProvider.System);
        var rollout = coordinator.ChildActorOf(RolloutActor.Props("slow", devices, registry, settings));
        coordinator.ExpectMsg<RolloutClaims>();
        rollout.Tell(new StartRollout(Spec("slow", Tags("x")), ["slow-1", "slow-2"], _h.Kit.TestActor));
        _h.Kit.ExpectMsg<RolloutView>();
        devices.ExpectMsg<GetDeviceState>(); // the assignment pass is now waiting

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var view = await rollout.Ask<RolloutView>(new GetRollout("slow"), TimeSpan.FromSeconds(3));
        Assert.Equal((RolloutStatus.Running, 2), (view.Status, view.Waves[0].Pending));
        // An operator decision is taken (and persisted) during the pass, too.
        var paused = await rollout.Ask<RolloutView>(new PauseRollout("slow", "alice", "hold"), TimeSpan.FromSeconds(3));
        Assert.Equal(RolloutStatus.Paused, paused.Status);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(6), $"queries waited {watch.Elapsed} for the pass");
    }

    [Fact]
    public void A_large_concurrency_cap_ramps_up_over_passes_instead_of_one_burst()
    {
        var devices = _h.Kit.CreateTestProbe();
        var coordinator = _h.Kit.CreateTestProbe();
        var settings = new RolloutSettings(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(20), TimeSpan.FromHours(1), 20, TimeProvider.System,
            MaxAssignPerPass: 2);
        var rollout = coordinator.ChildActorOf(RolloutActor.Props("ramp", devices, _h.Kit.CreateTestProbe(), settings));
        coordinator.ExpectMsg<RolloutClaims>();
        rollout.Tell(new StartRollout(Spec("ramp", Tags("x"), maxConcurrent: 10), Ids("ramp", 6), _h.Kit.TestActor));
        _h.Kit.ExpectMsg<RolloutView>();
        // maxConcurrent allows all six, but the first pass touches only two devices.
        devices.ExpectMsg<GetDeviceState>();
        devices.ExpectMsg<GetDeviceState>();
        devices.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
    }
}
