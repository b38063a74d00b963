using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Rollouts;
using static Orchestrator.Node.Tests.Rollouts.RolloutHarness;

namespace Orchestrator.Node.Tests.Rollouts;

/// <summary>The pure parts of a rollout: the plan cut and the wave decisions.</summary>
public sealed class RolloutStateTests
{
    private static readonly List<string> Devices = Enumerable.Range(0, 10).Select(i => $"d-{i}").ToList();

    [Fact]
    public void Plan_cuts_counts_and_rounded_up_percentages_and_the_last_wave_takes_the_rest()
    {
        var spec = Spec("p", Tags("x"), [new WaveSpec(WaveSizeKind.Count, 1), new WaveSpec(WaveSizeKind.Percent, 25), new WaveSpec(WaveSizeKind.Percent, 1)]);
        var plan = RolloutState.Plan(spec, Devices.AsEnumerable().Reverse());
        Assert.Equal([1, 3, 6], plan.Select(w => w.DeviceIds.Count));
        Assert.Equal(Devices, plan.SelectMany(w => w.DeviceIds)); // ordered by id, each once
        var tooMany = RolloutState.Plan(Spec("p", Tags("x"), [new WaveSpec(WaveSizeKind.Count, 50), new WaveSpec(WaveSizeKind.Count, 5)]), Devices);
        Assert.Equal([10, 0], tooMany.Select(w => w.DeviceIds.Count));
    }

    [Fact]
    public void Randomised_order_is_reproducible_from_the_seed()
    {
        var spec = Spec("p", Tags("x")) with { RandomizeOrder = true, Seed = 3 };
        var a = RolloutState.Plan(spec, Devices).Single().DeviceIds;
        Assert.Equal(a, RolloutState.Plan(spec, Devices.AsEnumerable().Reverse()).Single().DeviceIds);
        Assert.NotEqual(Devices, a);
        Assert.NotEqual(a, RolloutState.Plan(spec with { Seed = 4 }, Devices).Single().DeviceIds);
    }

    [Fact]
    public void Failing_devices_count_against_the_error_threshold_keep_their_assignment_and_may_still_succeed()
    {
        var spec = Spec("p", Tags("x"), error: 0.1);
        var s = RolloutState.Create(new RolloutCreated(spec, RolloutState.Plan(spec, Devices), T0));
        s.Apply(new RolloutStarted(T0));
        foreach (var d in Devices.Take(3)) s.Apply(new RolloutDeviceAssigned(d, 1, T0));
        s.Apply(new RolloutDeviceFailing("d-0", 3, "failing: 3 failed attempts, still retrying (last: Download HTTP 503)", T0));
        var c = s.Counters().Single();
        Assert.Equal((3, 1, 0), (c.InProgress, c.Failing, c.Failed));
        Assert.Null(s.NextDecision(T0)); // 1 of 10 is not above 10 %
        s.Apply(new RolloutDeviceFailing("d-1", 4, "failing: 4 failed attempts", T0));
        var pause = Assert.IsType<RolloutPaused>(s.NextDecision(T0));
        Assert.Contains("2 of 10 devices failed or are failing (0 failed, 2 failing", pause.Reason);
        s.Apply(pause);
        var view = s.View();
        Assert.Equal(["d-0", "d-1"], view.Failures.Select(f => f.DeviceId));
        Assert.All(view.Failures, f => Assert.True(f.Failing));
        Assert.Equal(["d-0", "d-1", "d-2"], s.InProgress()); // nobody was given up
        // A failing device that then installs is simply succeeded; resuming acknowledges the one still failing.
        s.Apply(new RolloutDeviceSucceeded("d-0", T0));
        Assert.Equal((1, 1), (s.Counters().Single().Succeeded, s.Counters().Single().Failing));
        s.Apply(new RolloutResumed("alice", T0));
        Assert.Null(s.NextDecision(T0));
        // Recovered from a snapshot, the failing mark survives.
        var restored = RolloutState.FromSnapshot(s.ToSnapshot());
        Assert.Equal(1, restored.Counters().Single().Failing);
    }

    [Fact]
    public void Waves_advance_on_the_threshold_after_the_soak_time_and_pause_on_errors()
    {
        var spec = Spec("p", Tags("x"), [new WaveSpec(WaveSizeKind.Count, 4), new WaveSpec(WaveSizeKind.Percent, 100)], success: 0.75, error: 0.25)
            with { SoakSeconds = 60 };
        var s = RolloutState.Create(new RolloutCreated(spec, RolloutState.Plan(spec, Devices), T0));
        s.Apply(new RolloutStarted(T0));
        Assert.Equal(["d-0", "d-1"], s.NextToAssign(2));
        foreach (var d in Devices.Take(4)) s.Apply(new RolloutDeviceAssigned(d, 1, T0));
        Assert.Empty(s.NextToAssign(5)); // wave 2 waits
        s.Apply(new RolloutDeviceSucceeded("d-0", T0));
        s.Apply(new RolloutDeviceSucceeded("d-1", T0));
        Assert.Null(s.NextDecision(T0));
        s.Apply(new RolloutDeviceSucceeded("d-2", T0));
        var met = Assert.IsType<RolloutWaveThresholdMet>(s.NextDecision(T0));
        s.Apply(met);
        Assert.Null(s.NextDecision(T0.AddSeconds(59)));
        var next = Assert.IsType<RolloutWaveStarted>(s.NextDecision(T0.AddSeconds(60)));
        s.Apply(next);
        Assert.Equal(1, s.CurrentWave);

        // Wave 2 has 6 devices: 1 failure is within 25 %, 2 are not.
        s.Apply(new RolloutDeviceAssigned("d-4", 1, T0));
        s.Apply(new RolloutDeviceAssigned("d-5", 1, T0));
        s.Apply(new RolloutDeviceFailed("d-4", "x", T0));
        Assert.Null(s.NextDecision(T0));
        s.Apply(new RolloutDeviceFailed("d-5", "x", T0));
        var pause = Assert.IsType<RolloutPaused>(s.NextDecision(T0));
        Assert.Contains("wave 2: 2 of 6 devices failed", pause.Reason);
        s.Apply(pause);
        Assert.Null(s.NextDecision(T0)); // paused: no decisions
        s.Apply(new RolloutResumed("alice", T0));
        Assert.Null(s.NextDecision(T0)); // acknowledged failures do not pause again

        // The snapshot restores the same state.
        var restored = RolloutState.FromSnapshot(s.ToSnapshot());
        Assert.Equal(s.Counters(), restored.Counters());
        Assert.Equal((s.Status, s.CurrentWave, s.AcknowledgedFailures[1]), (restored.Status, restored.CurrentWave, restored.AcknowledgedFailures[1]));
    }
}
