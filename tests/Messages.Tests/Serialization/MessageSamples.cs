using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Messages.Tests.Serialization;

/// <summary>One fully populated sample per registered message type (no property left at its default).</summary>
public static class MessageSamples
{
    private static readonly DateTimeOffset T = new(2026, 11, 25, 21, 0, 0, TimeSpan.FromHours(1));
    private static readonly TargetAssignment Target = new("acme", "2.1.0", 21, "manifests/acme/2.1.0.json", "rollout-7");
    private static readonly WorkItem Repair = new(WorkKind.Repair, "2.0.0", 20, "manifests/acme/2.0.0.json", ["bin/app", "lib/x.so"]);
    private static readonly TransferProgress Progress = new(WorkPhase.Verify, 1000, 2000, 3, 6);
    private static readonly FailureInfo Failure = new(WorkPhase.Download, "connection reset", 3, 7_500, T);

    /// <summary>All samples.</summary>
    public static IReadOnlyList<IOrchestratorMessage> All { get; } =
    [
        new RegisterDevice("dev-1", "acme", ["eu", "canary"], T),
        new CheckIn("dev-1", "acme", 20, "sha256:aa", "sha256:bb", "2.0.0", "manifests/acme/2.0.0.json", ["bin/app"], "1.4.2", T),
        new AssignTarget("dev-1", "acme", "2.1.0", 21, "manifests/acme/2.1.0.json", "rollout-7"),
        new CancelAssignment("dev-1", "alice", "bad build"),
        new ReportProgress("dev-1", 21, WorkPhase.Install, 10, 20, 1, 2, T),
        new ReportFailure("dev-1", 21, WorkPhase.Verify, "hash mismatch", 4, T),
        new ReportCompletion("dev-1", 21, "sha256:cc", T),
        new GetDeviceState("dev.2:x_y-z"),
        new DeviceState("dev-1", DeviceStatus.Offline, "acme", ["eu"], 20, "sha256:aa", "1.4.2", Target, Repair, Progress, 3, Failure,
            DeviceStatus.Repairing, T, 42),
        new CheckInDecision("dev-1", UpdateAction.Repair, "2.0.0", 20, "manifests/acme/2.0.0.json", ["bin/app"], DeviceStatus.RepairNeeded),
        new DeviceCommandAccepted("dev-1", DeviceStatus.Downloading),
        new RetryAdvice("dev-1", 5, 16_000),
        new DeviceCommandRejected("dev-1", "no_active_work", "check in first"),
        new DeviceRegistered("acme", ["eu", "canary"], T),
        new DeviceCheckedIn("acme", 20, "sha256:aa", "1.4.2", UpdateAction.Repair, Repair, T),
        new TargetAssigned(Target, T),
        new AssignmentCancelled("alice", "bad build", "rollout-7", T),
        new ProgressRecorded(Progress, T),
        new AttemptFailed(Failure, T),
        new WorkCompleted(21, "sha256:cc", WorkKind.Upgrade, T),
        new DeviceWentOffline(T.AddMinutes(-20), T),
        new DeviceCameBack(T),
        new QueryDevices(DeviceStatus.Failed, 20, "eu", "rollout-7", 50),
        new DeviceList([new DeviceSummary("dev-1", DeviceStatus.Idle, "acme", 20, ["eu"], "rollout-7", 21, 2, T)], 1, 99),
    ];
}
