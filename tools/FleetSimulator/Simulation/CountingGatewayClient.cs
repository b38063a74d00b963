using Orchestrator.DeviceAgent.Session;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Simulation;

/// <summary>
/// Wraps a device's real gateway client to count requests for the fleet totals and to record what the node
/// acknowledged (a check-in or completion report answered 2xx), so fault tests can check that nothing acknowledged is lost.
/// </summary>
internal sealed class CountingGatewayClient(IGatewayClient inner, FleetCounters counters, string deviceId, Action<string, CompletionReport>? acknowledged,
    Action<string, CheckInResponse>? checkInAcknowledged = null)
    : IGatewayClient
{
    public async Task<CheckInResponse> CheckInAsync(CheckInRequest request, CancellationToken ct)
    {
        var answer = await inner.CheckInAsync(request, ct);
        Interlocked.Increment(ref counters.CheckIns);
        if (answer.Action != UpdateAction.None) Interlocked.Increment(ref counters.WorkOrders);
        checkInAcknowledged?.Invoke(deviceId, answer);
        return answer;
    }

    public Task ReportProgressAsync(ProgressReport report, CancellationToken ct) => inner.ReportProgressAsync(report, ct);

    public async Task<TimeSpan?> ReportFailureAsync(FailureReport report, CancellationToken ct)
    {
        var wait = await inner.ReportFailureAsync(report, ct);
        Interlocked.Increment(ref counters.FailureReports);
        return wait;
    }

    public async Task ReportCompletionAsync(CompletionReport report, CancellationToken ct)
    {
        await inner.ReportCompletionAsync(report, ct);
        Interlocked.Increment(ref counters.CompletionsAcknowledged);
        acknowledged?.Invoke(deviceId, report);
    }

    public Task ReportUpdaterLostAsync(UpdaterLostReport report, CancellationToken ct) => inner.ReportUpdaterLostAsync(report, ct);
}

/// <summary>Fleet-wide counters, updated with Interlocked by every simulated device.</summary>
public sealed class FleetCounters
{
    /// <summary>Check-ins answered by the gateway.</summary>
    public long CheckIns;
    /// <summary>Check-ins answered with Upgrade or Repair.</summary>
    public long WorkOrders;
    /// <summary>Sessions that installed an upgrade.</summary>
    public long Upgrades;
    /// <summary>Sessions that repaired the installed version.</summary>
    public long Repairs;
    /// <summary>Session attempts that failed (any stage, including an unreachable gateway).</summary>
    public long FailedAttempts;
    /// <summary>Failure reports the gateway accepted.</summary>
    public long FailureReports;
    /// <summary>Completion reports the gateway acknowledged.</summary>
    public long CompletionsAcknowledged;
    /// <summary>Bytes received from the network by successful sessions.</summary>
    public long BytesDownloaded;
    /// <summary>Chunks downloaded by successful sessions.</summary>
    public long ChunksDownloaded;
    /// <summary>Chunks reused from local files by successful sessions.</summary>
    public long ChunksReused;
    /// <summary>Sessions running right now.</summary>
    public long Running;
}
