using Orchestrator.Messages.Budgets;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Messages.Tests.Serialization;

/// <summary>One fully populated sample per registered message type (no property left at its default).</summary>
public static class MessageSamples
{
    private static readonly DateTimeOffset T = new(2026, 11, 25, 21, 0, 0, TimeSpan.FromHours(1));
    private static readonly TargetAssignment Target = new("acme", "2.1.0", 21, "manifests/acme/2.1.0.json", "rollout-7", 1_000_000, true);
    private static readonly WorkItem Repair = new(WorkKind.Repair, "2.0.0", 20, "manifests/acme/2.0.0.json", ["bin/app", "lib/x.so"]);
    private static readonly IReadOnlyDictionary<string, string> Site = new Dictionary<string, string> { ["arch"] = "arm64", ["site"] = "berlin" };
    private static readonly IReadOnlyDictionary<string, string> Ring = new Dictionary<string, string> { ["ring"] = "canary" };
    private static readonly TransferProgress Progress = new(WorkPhase.Verify, 1000, 2000, 3, 6);
    private static readonly FailureInfo Failure = new(WorkPhase.Download, "connection reset", 3, 7_500, T);

    private static readonly RolloutSpec Spec = new("ro-1",
        new RolloutTarget("acme", "2.1.0", 21, "manifests/acme/2.1.0.json"),
        new DeviceSelector(["eu"], ["dev-1"], [new DeviceGroup("canary", ["canary"], ["dev-2"], Ring)], Site, [19, 20]),
        [new WaveSpec(WaveSizeKind.Count, 2), new WaveSpec(WaveSizeKind.Percent, 100)],
        true, 42, 10, 1_000_000, 0.9, 0.1, 60, 5, T, new MaintenanceWindow(22 * 60, 4 * 60), "alice", 3600, "beta", 4);
    private static readonly ChannelRelease V21 = new("2.1.0", 21, "manifests/acme/2.1.0.json");
    private static readonly ChannelRelease V20 = new("2.0.0", 20, "manifests/acme/2.0.0.json");
    private static readonly ChannelView Channel = new("acme", "beta", V21, [new ChannelHold("ro-2", V21, V20)],
        [new FinishedRollout("ro-1", RolloutStatus.RolledBack, V21, V20)], [new ChannelChange(V20, "rollout ro-1 rolled back", T)], T);
    private static readonly RollbackVersion Previous = new(20, "2.0.0", "manifests/acme/2.0.0.json");

    /// <summary>All samples.</summary>
    public static IReadOnlyList<IOrchestratorMessage> All { get; } =
    [
        new RegisterDevice("dev-1", "acme", ["eu", "canary"], T),
        new CheckIn("dev-1", "acme", 20, "sha256:aa", "sha256:bb", "2.0.0", "manifests/acme/2.0.0.json", ["bin/app"], "1.4.2", T, 1_700_000_000_001,
            [new ChannelTarget("stable", V21, ["ro-2"])], true, Site),
        new AssignTarget("dev-1", "acme", "2.1.0", 21, "manifests/acme/2.1.0.json", "rollout-7", 1_000_000, true),
        new SetDeviceProduct("dev-1", "acme-pro", "alice", T),
        new CancelAssignment("dev-1", "alice", "bad build", true),
        new ReportProgress("dev-1", 21, WorkPhase.Install, 10, 20, 1, 2, T, 1_700_000_000_002),
        new ReportFailure("dev-1", 21, WorkPhase.Verify, "hash mismatch", 4, T, 1_700_000_000_003),
        new ReportCompletion("dev-1", 21, "sha256:cc", T, 1_700_000_000_004),
        new GetDeviceState("dev.2:x_y-z"),
        new DeviceState("dev-1", DeviceStatus.Offline, "acme", ["eu"], 20, "sha256:aa", "1.4.2", Target, Repair, Progress, 3, Failure,
            DeviceStatus.Repairing, T, 42, 1_700_000_000_005, 21, true, new UpdaterLoss("free copy damaged, hidden backup damaged, image damaged", T), T.AddDays(1),
            Site, Ring),
        new DeviceSnapshot(new DeviceState("dev-1", DeviceStatus.Offline, "acme", ["eu"], 20, "sha256:aa", "1.4.2", Target, Repair, Progress, 3, Failure,
            DeviceStatus.Repairing, T, 42, 1_700_000_000_006, 21, true, new UpdaterLoss("virtual copy missing", T), T.AddDays(2), Site, Ring), T.AddMinutes(4)),
        new CheckSilence("dev-1"),
        new RecoverDevice("dev-1", 1),
        new CheckInDecision("dev-1", UpdateAction.Repair, "2.0.0", 20, "manifests/acme/2.0.0.json", ["bin/app"], DeviceStatus.RepairNeeded,
            "rollout-7", 1_000_000, true, "rollout", 21, "acme", true),
        new DeviceCommandAccepted("dev-1", DeviceStatus.Downloading),
        new RetryAdvice("dev-1", 5, 16_000),
        new CheckInDeferred("dev-1", 4, 116_551),
        new DeviceCommandRejected("dev-1", "no_active_work", "check in first"),
        new DeviceRegistered("acme", ["eu", "canary"], T),
        new DeviceCheckedIn("acme", 20, "sha256:aa", "1.4.2", UpdateAction.Repair, Repair, T, 1_700_000_000_006),
        new TargetAssigned(Target, T),
        new AssignmentCancelled("alice", "bad build", "rollout-7", T, true),
        new ProgressRecorded(Progress, T, 1_700_000_000_007),
        new AttemptFailed(Failure, T, 1_700_000_000_008),
        new WorkCompleted(21, "sha256:cc", WorkKind.Upgrade, T, 1_700_000_000_009),
        new DeviceWentOffline(T.AddMinutes(-20), T),
        new DeviceCameBack(T),
        new RequestSequenceReset("credential rotated", T),
        new ResetRequestSequence("dev-1", "credential rotated", T),
        new DeviceProductChanged("acme", "acme-pro", "alice", T),
        new DeviceStaleChanged(true, T),
        new ReportUpdaterLost("dev-1", "no source gave a verified updater", T, 1_700_000_000_010),
        new DeviceUpdaterLost("no source gave a verified updater", T, 1_700_000_000_011),
        new DecommissionDevice("dev-1", "ops", "returned to the vendor", T),
        new DeviceDecommissioned("ops", "returned to the vendor", T),
        new SetDeviceAttributes("dev-1", Ring, ["site"], "ops", T),
        new DeviceAttributesReported(Site, T),
        new DeviceAttributesSet(Ring, "ops", T),
        new DeviceUpdaterRestored(T),
        new QueryDevices(DeviceStatus.Failed, 20, "eu", "rollout-7", 50, Site),
        new DeviceList([new DeviceSummary("dev-1", DeviceStatus.Idle, "acme", 20, ["eu"], "rollout-7", 21, 2, T, true, 21, true, Site)], 1, 99),
        new CountDevices(T),
        new DeviceCounts(Enum.GetValues<DeviceStatus>().ToDictionary(st => st, st => (int)st + 3), 4, 99),
        new CreateRollout(Spec),
        new GetRollout("ro-1"),
        new ListRollouts(true),
        new PauseRollout("ro-1", "alice", "watching errors"),
        new ResumeRollout("ro-1", "alice"),
        new AbortRollout("ro-1", "alice", "bad build"),
        new RollbackRollout("ro-1", "alice", "bad build", [Previous]),
        new RetryFailedDevices("ro-1", "alice"),
        new RolloutView(Spec, RolloutStatus.Paused, 2, "too many failures", [new WaveCounters(1, 10, 1, 2, 3, 4, 1)],
            [new RolloutDeviceFailure("dev-3", 1, "hash mismatch", true)], true, T, T.AddMinutes(5), new RollbackCounters(4, 1, 2, 1)),
        new RolloutList([new RolloutSummary("ro-1", "acme", "2.1.0", RolloutStatus.Running, 1, 3, 100, 40, 2, T)]),
        new RolloutRejected("ro-1", "invalid_request", "errorThreshold", "give a fraction"),
        new RolloutCreated(Spec, [new PlannedWave(["dev-1", "dev-2"])], T),
        new RolloutStarted(T),
        new RolloutDevicesJoined(["dev-9"], T),
        new RolloutDeviceAssigned("dev-1", 20, T),
        new RolloutDeviceSucceeded("dev-1", T),
        new RolloutDeviceFailed("dev-1", "retry policy exhausted", T),
        new RolloutDeviceFailing("dev-1", 4, "download HTTP 503", T),
        new RolloutWaveThresholdMet(1, T),
        new RolloutWaveStarted(1, T),
        new RolloutPaused("system", "error threshold", T),
        new RolloutResumed("alice", T),
        new RolloutAborted("alice", "bad build", T),
        new RolloutRolledBack("alice", "bad build", [Previous], T),
        new RolloutCommandsDelivered(12, T),
        new RolloutFailedDevicesRetried("alice", ["dev-3"], T),
        new RolloutCompleted(T),
        new RolloutDeviceRestored("dev-1", T),
        new RolloutDeviceRestoreFailed("dev-1", "gave up restoring", T),
        new RolloutRegistered("ro-1", T),
        new RolloutSnapshot(Spec, RolloutStatus.RolledBack, true, 1, 2, "bad build",
            [new RolloutDeviceRecord("dev-1", 1, RolloutDeviceOutcome.Failed, 20, "hash mismatch", T, 3, RollbackOutcome.Failed, "gave up")], [3, 1], T, true, [Previous], T, T.AddHours(1)),
        new RolloutCoordinatorSnapshot(["ro-1", "ro-2"]),
        new GetChannels("acme"),
        new OpenDeviceBudget("dev-1", "ro-2", 500_000, new BudgetLimits(300_000, 200_000, 2_000_000, 3_600_000)),
        new DeviceBudgetOpened("dev-1", 1_500_000, 200_000, T),
        new LeaseBudget("device:dev-1", "akka.tcp://orchestrator@10.0.0.1:4053", 65_576, 262_144, new BudgetLimits(300_000, 200_000, 2_000_000, 3_600_000)),
        new BudgetLeased("device:dev-1", 262_144, T, "ro-2", 500_000),
        new BudgetDenied("global", "global", 1_250),
        new ReturnBudget("rollout:ro-2", 12_345, T),
        new SetChannelRelease("acme", "beta", V21, "alice", "hotfix", true),
        new SyncRolloutChannel("ro-2", "acme", "beta", V21, RolloutStatus.Completed),
        new RolloutChannelSynced("ro-2", RolloutStatus.Completed),
        new ChannelRejected("channel_in_rollout", "wait for ro-2"),
        Channel,
        new ChannelDirectoryView([Channel], 17),
        new ChannelReleaseSet("acme", "beta", V21, "alice", "hotfix", T),
        new ChannelRolloutStarted("acme", "beta", "ro-2", V21, T),
        new ChannelRolloutCompleted("acme", "beta", "ro-2", V21, T),
        new ChannelRolloutRolledBack("acme", "beta", "ro-2", V21, T),
        new ChannelRolloutAborted("acme", "beta", "ro-2", V21, T),
        new ChannelDirectorySnapshot([Channel]),
        new DeviceCredentialChanged("dev-1", T),
        new DevicesSighted(["dev-1", "dev-2"], [T.UtcTicks, T.AddSeconds(1).UtcTicks]),
        new DevicesJournaled(["dev-1", "dev-2"], [7, 12], [1]),
    ];
}
