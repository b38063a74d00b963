using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>Every transition of the pure state machine, without actors or databases.</summary>
public sealed class DeviceStateMachineTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DeviceActorSettings Settings = DeviceActorSettings.Default;
    private readonly Random _random = new(42);
    private DeviceState _state = DeviceState.Initial(Id);

    private IOrchestratorMessage Run(IDeviceCommand c)
    {
        var outcome = DeviceStateMachine.Decide(_state, c, Settings, _random, T0);
        foreach (var e in outcome.Events) _state = DeviceStateMachine.Apply(_state, e, _state.EventCount + 1);
        return outcome.Reply(_state);
    }

    private static CheckIn Clean(long version, string digest = "d-ok") =>
        new(Id, "acme", version, digest, version == 0 ? null : digest, version == 0 ? null : $"{version}.0", version == 0 ? null : $"manifests/acme/{version}.json", [], "1.0", T0);

    private static CheckIn Damaged(long version, params string[] files) =>
        new(Id, "acme", version, "d-bad", "d-ok", $"{version}.0", $"manifests/acme/{version}.json", files, "1.0", T0);

    private static AssignTarget Target(long version, string rollout = "r1") => new(Id, "acme", $"{version}.0", version, $"manifests/acme/{version}.json", rollout);

    [Fact]
    public void New_device_is_unknown_and_clean_check_in_makes_it_idle()
    {
        Assert.Equal(DeviceStatus.Unknown, _state.Status);
        var d = Assert.IsType<CheckInDecision>(Run(Clean(3)));
        Assert.Equal(UpdateAction.None, d.Action);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
        Assert.Equal(3, _state.InstalledVersionId);
        Assert.Equal(1, _state.EventCount);
    }

    [Fact]
    public void Version_mismatch_with_target_means_upgrade()
    {
        Run(Clean(3));
        Run(Target(4));
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.Status);
        var d = Assert.IsType<CheckInDecision>(Run(Clean(3)));
        Assert.Equal(UpdateAction.Upgrade, d.Action);
        Assert.Equal(4, d.TargetVersionId);
        Assert.Equal("manifests/acme/4.json", d.ManifestPath);
        Assert.Empty(d.RepairFiles);
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.Status);
    }

    [Fact]
    public void Target_assigned_before_first_check_in_is_applied_at_check_in()
    {
        Run(Target(4));
        Assert.Equal(DeviceStatus.Unknown, _state.Status);
        var d = Assert.IsType<CheckInDecision>(Run(Clean(0)));
        Assert.Equal(UpdateAction.Upgrade, d.Action);
    }

    [Fact]
    public void Same_version_with_differing_digest_means_repair_of_exactly_the_differing_files()
    {
        var d = Assert.IsType<CheckInDecision>(Run(Damaged(3, "bin/app", "lib/a.so")));
        Assert.Equal(UpdateAction.Repair, d.Action);
        Assert.Equal(["bin/app", "lib/a.so"], d.RepairFiles);
        Assert.Equal(3, d.TargetVersionId);
        Assert.Equal("manifests/acme/3.json", d.ManifestPath);
        Assert.Equal(DeviceStatus.RepairNeeded, _state.Status);
    }

    [Fact]
    public void Upgrade_wins_over_repair()
    {
        Run(Target(4));
        var d = Assert.IsType<CheckInDecision>(Run(Damaged(3, "bin/app")));
        Assert.Equal(UpdateAction.Upgrade, d.Action);
    }

    [Fact]
    public void A_check_in_running_the_work_version_completes_the_work_whose_report_was_lost()
    {
        Run(Clean(3));
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportProgress(Id, 4, WorkPhase.Install, 10, 10, 1, 1, T0));
        Assert.Equal(DeviceStatus.Installing, _state.Status);

        // The completion report never arrived; the next check-in runs version 4 with nothing differing.
        var outcome = DeviceStateMachine.Decide(_state, Clean(4, "d-4"), Settings, _random, T0.AddMinutes(1));
        var done = Assert.IsType<WorkCompleted>(outcome.Events[0]);
        Assert.Equal((4L, "d-4", WorkKind.Upgrade), (done.InstalledVersionId, done.InventoryDigest, done.Kind));
        Assert.IsType<DeviceCheckedIn>(outcome.Events[1]);
        var d = Assert.IsType<CheckInDecision>(Run(Clean(4, "d-4")));
        Assert.Equal(UpdateAction.None, d.Action);
        Assert.Equal((DeviceStatus.Idle, 4L, (WorkItem?)null), (_state.Status, _state.InstalledVersionId, _state.Work));

        // Running the work's version with differing files is not a completion: the device is told to repair.
        Run(Target(5));
        Run(Clean(4, "d-4"));
        var damaged = DeviceStateMachine.Decide(_state, Damaged(5, "bin/app"), Settings, _random, T0);
        Assert.DoesNotContain(damaged.Events, e => e is WorkCompleted);
    }

    [Fact]
    public void Upgrade_decision_carries_the_rollout_and_its_cap_and_a_repair_carries_none()
    {
        Run(Clean(3));
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "r9", 250_000));
        Assert.Equal(250_000, _state.Target!.BandwidthBytesPerSecond);
        var up = Assert.IsType<CheckInDecision>(Run(Clean(3)));
        Assert.Equal((UpdateAction.Upgrade, "r9", 250_000L), (up.Action, up.RolloutId, up.BandwidthBytesPerSecond));

        Run(new ReportCompletion(Id, 4, "d-4", T0));
        var repair = Assert.IsType<CheckInDecision>(Run(Damaged(4, "bin/app")));
        Assert.Equal((UpdateAction.Repair, null, 0L), (repair.Action, repair.RolloutId, repair.BandwidthBytesPerSecond));
    }

    [Fact]
    public void Unknown_manifest_digest_means_no_repair()
    {
        var d = Assert.IsType<CheckInDecision>(Run(new CheckIn(Id, "acme", 9, "whatever", null, null, null, [], null, T0)));
        Assert.Equal(UpdateAction.None, d.Action);
    }

    [Theory]
    [InlineData(WorkPhase.Download, DeviceStatus.Downloading)]
    [InlineData(WorkPhase.Verify, DeviceStatus.Verifying)]
    [InlineData(WorkPhase.Install, DeviceStatus.Installing)]
    public void Upgrade_progress_phases_move_the_status(WorkPhase phase, DeviceStatus expected)
    {
        Run(Target(4));
        Run(Clean(3));
        Assert.IsType<DeviceCommandAccepted>(Run(new ReportProgress(Id, 4, phase, 5, 10, 1, 2, T0)));
        Assert.Equal(expected, _state.Status);
        Assert.Equal(new TransferProgress(phase, 5, 10, 1, 2), _state.Progress);
    }

    [Fact]
    public void Repair_progress_is_repairing_and_completion_completes()
    {
        Run(Damaged(3, "bin/app"));
        Run(new ReportProgress(Id, 3, WorkPhase.Download, 1, 2, 1, 2, T0));
        Assert.Equal(DeviceStatus.Repairing, _state.Status);
        Run(new ReportProgress(Id, 3, WorkPhase.Install, 2, 2, 2, 2, T0));
        Assert.Equal(DeviceStatus.Repairing, _state.Status);
        Assert.IsType<DeviceCommandAccepted>(Run(new ReportCompletion(Id, 3, "d-ok", T0)));
        Assert.Equal(DeviceStatus.Completed, _state.Status);
        Assert.Null(_state.Work);
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3))).Action);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
    }

    [Fact]
    public void Completion_of_upgrade_installs_the_target()
    {
        Run(Clean(3));
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportProgress(Id, 4, WorkPhase.Download, 10, 10, 2, 2, T0));
        Run(new ReportCompletion(Id, 4, "d-4", T0));
        Assert.Equal(DeviceStatus.Completed, _state.Status);
        Assert.Equal(4, _state.InstalledVersionId);
        Assert.Equal("d-4", _state.InventoryDigest);
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(4, "d-4"))).Action);
    }

    [Fact]
    public void Failures_back_off_exponentially_with_jitter_forever_and_the_count_persists_across_check_ins()
    {
        Run(Target(4));
        Run(Clean(3));
        var delays = new List<long>();
        for (var i = 1; i <= 12; i++)
        {
            var advice = Assert.IsType<RetryAdvice>(Run(new ReportFailure(Id, 4, WorkPhase.Download, "timeout", i, T0)));
            Assert.Equal(i, advice.Attempt);
            var nominal = Math.Min(Settings.RetryBase.TotalMilliseconds * Math.Pow(2, i - 1), Settings.RetryCap.TotalMilliseconds);
            Assert.InRange(advice.RetryAfterMs, (long)(nominal / 2) - 1, (long)nominal);
            delays.Add(advice.RetryAfterMs);
            Assert.Equal(DeviceStatus.Failed, _state.Status);
            if (i == 5)
            {
                // The agent restarts and checks in before the announced retry time: the same work is not re-offered yet,
                // and nothing changes.
                var before = _state;
                var deferred = Assert.IsType<CheckInDeferred>(Run(Clean(3)));
                Assert.Equal((5, advice.RetryAfterMs), (deferred.Attempt, deferred.RetryAfterMs));
                Assert.Equal(before, _state);
                // After it: same work, the attempt count survives.
                Assert.Equal(UpdateAction.Upgrade, Assert.IsType<CheckInDecision>(Run(Clean(3) with { Timestamp = T0.AddMilliseconds(advice.RetryAfterMs) })).Action);
                Assert.Equal(5, _state.FailedAttempts);
            }
        }
        Assert.True(delays[^1] <= Settings.RetryCap.TotalMilliseconds);
        Assert.True(delays[^1] >= Settings.RetryCap.TotalMilliseconds / 2);
        Run(new ReportProgress(Id, 4, WorkPhase.Download, 1, 10, 1, 10, T0));
        Assert.Equal(DeviceStatus.Downloading, _state.Status);
        Assert.Equal(12, _state.FailedAttempts);
    }

    [Fact]
    public void A_device_its_rollout_gave_up_on_stays_failed_with_the_reason_until_new_work()
    {
        Run(Clean(3));
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportFailure(Id, 4, WorkPhase.Verify, "hash mismatch", 1, T0));
        Assert.IsType<DeviceCommandAccepted>(Run(new CancelAssignment(Id, "rollout:r1", "did not install 4.0 within 00:01:00", GiveUp: true)));
        Assert.Equal(DeviceStatus.Failed, _state.Status);
        Assert.Null(_state.Work);
        Assert.Null(_state.Target);
        Assert.Equal(("did not install 4.0 within 00:01:00", WorkPhase.Verify, 1), (_state.LastFailure!.Reason, _state.LastFailure.Stage, _state.FailedAttempts));
        // It checks in with nothing to do: still shown as failed.
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3) with { Timestamp = T0.AddHours(1) })).Action);
        Assert.Equal(DeviceStatus.Failed, _state.Status);
        Assert.NotNull(_state.LastFailure);
        // New work replaces the failure.
        Run(Target(4));
        Assert.Equal(UpdateAction.Upgrade, Assert.IsType<CheckInDecision>(Run(Clean(3) with { Timestamp = T0.AddHours(2) })).Action);
        Assert.Equal((DeviceStatus.UpgradeAssigned, 0), (_state.Status, _state.FailedAttempts));
        Assert.Null(_state.LastFailure);
    }

    [Fact]
    public void Operator_cancel_stops_retrying()
    {
        Run(Clean(3));
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportFailure(Id, 4, WorkPhase.Download, "timeout", 1, T0));
        Assert.IsType<DeviceCommandAccepted>(Run(new CancelAssignment(Id, "alice", "bad build")));
        Assert.Equal(DeviceStatus.Idle, _state.Status);
        Assert.Null(_state.Target);
        Assert.Equal(0, _state.FailedAttempts);
        var rejected = Assert.IsType<DeviceCommandRejected>(Run(new ReportFailure(Id, 4, WorkPhase.Download, "timeout", 2, T0)));
        Assert.Equal("no_active_work", rejected.Code);
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3))).Action);
    }

    [Fact]
    public void Silence_goes_offline_and_the_device_resumes_where_it_was()
    {
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportProgress(Id, 4, WorkPhase.Download, 5, 10, 1, 2, T0));
        _state = DeviceStateMachine.Apply(_state, new DeviceWentOffline(T0, T0.AddMinutes(20)), _state.EventCount + 1);
        Assert.Equal(DeviceStatus.Offline, _state.Status);
        Assert.Equal(DeviceStatus.Downloading, _state.StatusBeforeOffline);
        var before = _state.EventCount;
        Assert.IsType<DeviceCommandAccepted>(Run(new ReportProgress(Id, 4, WorkPhase.Download, 7, 10, 1, 2, T0.AddMinutes(30))));
        Assert.Equal(DeviceStatus.Downloading, _state.Status);
        Assert.Null(_state.StatusBeforeOffline);
        Assert.Equal(before + 2, _state.EventCount); // came back + progress
        Assert.Equal(7, _state.Progress!.BytesDone);
    }

    [Fact]
    public void A_refused_report_from_an_offline_device_changes_nothing()
    {
        Run(Clean(3));
        _state = DeviceStateMachine.Apply(_state, new DeviceWentOffline(T0, T0), _state.EventCount + 1);
        var before = _state;
        Assert.IsType<DeviceCommandRejected>(Run(new ReportCompletion(Id, 4, "x", T0)));
        Assert.Same(before, _state);
    }

    [Fact]
    public void Operator_commands_do_not_bring_an_offline_device_back_but_shape_its_resumed_status()
    {
        Run(Clean(3));
        _state = DeviceStateMachine.Apply(_state, new DeviceWentOffline(T0, T0), _state.EventCount + 1);
        Run(Target(4));
        Assert.Equal(DeviceStatus.Offline, _state.Status);
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.StatusBeforeOffline);
        Assert.Equal(UpdateAction.Upgrade, Assert.IsType<CheckInDecision>(Run(Clean(3))).Action);
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.Status);
    }

    [Fact]
    public void Reports_for_another_version_are_stale_and_change_nothing()
    {
        Run(Target(4));
        Run(Clean(3));
        var before = _state;
        var r = Assert.IsType<DeviceCommandRejected>(Run(new ReportProgress(Id, 5, WorkPhase.Download, 1, 2, 1, 2, T0)));
        Assert.Equal("stale_target", r.Code);
        Assert.Same(before, _state);
    }

    [Fact]
    public void New_target_supersedes_running_work_and_resets_attempts()
    {
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportFailure(Id, 4, WorkPhase.Download, "x", 1, T0));
        Run(Target(5, "r2"));
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.Status);
        Assert.Equal(5, _state.Work!.VersionId);
        Assert.Equal(0, _state.FailedAttempts);
        Assert.Equal("r2", _state.Target!.RolloutId);
    }

    [Fact]
    public void Repeated_assignment_and_registration_are_idempotent()
    {
        Run(new RegisterDevice(Id, "acme", ["eu"], T0));
        Run(Target(4));
        var count = _state.EventCount;
        Run(Target(4));
        Run(new RegisterDevice(Id, "acme", ["eu"], T0));
        Run(new CancelAssignment(Id, "a", "b"));
        Run(new CancelAssignment(Id, "a", "b"));
        Assert.Equal(count + 1, _state.EventCount);
        Assert.Equal(["eu"], _state.Tags);
    }

    [Fact]
    public void Product_mismatch_is_refused()
    {
        Run(new RegisterDevice(Id, "acme", [], T0));
        var r = Assert.IsType<DeviceCommandRejected>(Run(new AssignTarget(Id, "other", "1", 1, "m", "r")));
        Assert.Equal("product_mismatch", r.Code);
        Assert.Null(_state.Target);
    }

    [Fact]
    public void Check_in_at_the_target_clears_work_even_if_completion_was_lost()
    {
        Run(Clean(3));
        Run(Target(4));
        Run(Clean(3));
        Run(new ReportProgress(Id, 4, WorkPhase.Install, 10, 10, 2, 2, T0));
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(4))).Action);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
        Assert.Null(_state.Work);
    }

    [Fact]
    public void Backoff_is_capped_and_never_overflows()
    {
        var d = RetryBackoff.Delay(int.MaxValue, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5), new Random(1));
        Assert.InRange(d, TimeSpan.FromMinutes(2.5), TimeSpan.FromMinutes(5));
        Assert.InRange(RetryBackoff.Delay(1, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5), new Random(1)), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
    }

    // Heartbeats: a check-in that changes nothing but LastSeen is journaled at most every LastSeenPersistInterval.

    private (IReadOnlyList<IDeviceEvent> Events, IOrchestratorMessage Reply) Decide(IDeviceCommand c, DeviceActorSettings settings)
    {
        var outcome = DeviceStateMachine.Decide(_state, c, settings, _random, T0);
        foreach (var e in outcome.Events) _state = DeviceStateMachine.Apply(_state, e, _state.EventCount + 1);
        return (outcome.Events, outcome.Reply(_state));
    }

    private static CheckIn At(CheckIn c, TimeSpan after) => c with { Timestamp = T0 + after };

    [Fact]
    public void Heartbeat_within_the_interval_persists_nothing_and_replies_the_same()
    {
        var first = Decide(Clean(3), Settings);
        Assert.Single(first.Events);
        var before = _state;
        var beat = Decide(At(Clean(3), TimeSpan.FromMinutes(4)), Settings);
        Assert.Empty(beat.Events);
        Assert.Equal(before, _state);
        Assert.Equal(T0, _state.LastSeen); // the persisted LastSeen, at most the interval behind
        // The reply is what persisting would have produced.
        var always = new DeviceActorSettings(Settings.OfflineAfter, Settings.SnapshotEvery, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5));
        Assert.Equal(TimeSpan.Zero, always.LastSeenPersistInterval);
        var persisted = DeviceStateMachine.Decide(before, At(Clean(3), TimeSpan.FromMinutes(4)), always, _random, T0);
        Assert.Single(persisted.Events);
        var after = DeviceStateMachine.Apply(before, persisted.Events[0], before.EventCount + 1);
        Assert.Equal(persisted.Reply(after), beat.Reply);
        Assert.Equal(T0 + TimeSpan.FromMinutes(4), after.LastSeen);
    }

    [Fact]
    public void Heartbeat_is_persisted_once_the_persisted_last_seen_is_older_than_the_interval()
    {
        Decide(Clean(3), Settings);
        Assert.Empty(Decide(At(Clean(3), Settings.LastSeenPersistInterval - TimeSpan.FromSeconds(1)), Settings).Events);
        var due = Decide(At(Clean(3), Settings.LastSeenPersistInterval), Settings);
        var e = Assert.IsType<DeviceCheckedIn>(Assert.Single(due.Events));
        Assert.Equal(T0 + Settings.LastSeenPersistInterval, e.At);
        Assert.Equal(T0 + Settings.LastSeenPersistInterval, _state.LastSeen);
        // The interval restarts from the newly persisted LastSeen.
        Assert.Empty(Decide(At(Clean(3), Settings.LastSeenPersistInterval + TimeSpan.FromMinutes(1)), Settings).Events);
    }

    [Fact]
    public void Version_inventory_or_agent_change_is_persisted_immediately()
    {
        Decide(Clean(3), Settings);
        var later = TimeSpan.FromSeconds(10);
        var version = Decide(At(Clean(4), later), Settings);
        Assert.Single(version.Events);
        Assert.Equal(4, _state.InstalledVersionId);
        var digest = Decide(At(Clean(4, "d-other"), later * 2), Settings);
        Assert.Single(digest.Events);
        Assert.Equal("d-other", _state.InventoryDigest);
        var agent = Decide(At(Clean(4, "d-other") with { AgentVersion = "2.0" }, later * 3), Settings);
        Assert.Single(agent.Events);
        Assert.Equal("2.0", _state.AgentVersion);
        // A damaged install (repair work) and an upgrade decision are work, never heartbeats.
        Assert.Single(Decide(At(Damaged(4, "bin/app"), later * 4), Settings).Events);
        Assert.Equal(DeviceStatus.RepairNeeded, _state.Status);
    }

    [Fact]
    public void Status_change_and_upgrade_check_ins_are_persisted_even_within_the_interval()
    {
        Decide(Clean(3), Settings);
        Decide(Target(4), Settings);
        var upgrade = Decide(At(Clean(3), TimeSpan.FromSeconds(5)), Settings);
        Assert.Single(upgrade.Events);
        Assert.Equal(UpdateAction.Upgrade, Assert.IsType<CheckInDecision>(upgrade.Reply).Action);
        Assert.Single(Decide(new ReportCompletion(Id, 4, "d-ok", T0.AddSeconds(6)), Settings).Events);
        Assert.Equal(DeviceStatus.Completed, _state.Status);
        // Completed -> Idle is a status change: journaled although LastSeen is seconds old.
        Assert.Single(Decide(At(Clean(4), TimeSpan.FromSeconds(7)), Settings).Events);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
        Assert.Empty(Decide(At(Clean(4), TimeSpan.FromSeconds(8)), Settings).Events);
    }

    [Fact]
    public void Offline_device_returning_with_a_heartbeat_persists_its_return()
    {
        Decide(Clean(3), Settings);
        _state = DeviceStateMachine.Apply(_state, new DeviceWentOffline(T0, T0.AddMinutes(1)), _state.EventCount + 1);
        var back = Decide(At(Clean(3), TimeSpan.FromMinutes(2)), Settings);
        var e = Assert.IsType<DeviceCameBack>(Assert.Single(back.Events));
        Assert.Equal(T0.AddMinutes(2), e.At);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
        Assert.Equal(T0.AddMinutes(2), _state.LastSeen);
        Assert.Equal(DeviceStatus.Idle, Assert.IsType<CheckInDecision>(back.Reply).Status);
    }

    [Fact]
    public void Persist_interval_must_be_shorter_than_the_offline_timeout()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new DeviceActorSettings(TimeSpan.FromMinutes(1), 10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(1)));
        Assert.Contains("shorter than OfflineAfter", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new DeviceActorSettings(TimeSpan.FromMinutes(1), 10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(-1)));
        Assert.True(DeviceActorSettings.Default.LastSeenPersistInterval < DeviceActorSettings.Default.OfflineAfter);
    }
}
