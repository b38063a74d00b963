using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// What the HTTP layer needs from the device side of the cluster. The node's implementation forwards to the
/// sharded device actors; the HTTP layer knows nothing about actors.
/// </summary>
public interface IDeviceGateway
{
    // requestSequence: the authenticated request's sequence number; the device actor refuses one it has already seen
    // (401 replayed_sequence). 0 means "not from the signed device API" and is not checked.

    /// <summary>Decides None/Upgrade/Repair for a validated check-in (the grant is added by the HTTP layer).</summary>
    ValueTask<CheckInAnswer> CheckInAsync(string deviceId, CheckInRequest request, CancellationToken ct, long requestSequence = 0);

    /// <summary>Records download progress.</summary>
    Task ReportProgressAsync(string deviceId, ProgressReport report, CancellationToken ct, long requestSequence = 0);

    /// <summary>Records a failed attempt; returns how long the device should wait before retrying (null: its own backoff).</summary>
    Task<TimeSpan?> ReportFailureAsync(string deviceId, FailureReport report, CancellationToken ct, long requestSequence = 0);

    /// <summary>Records a completed, verified install.</summary>
    Task ReportCompletionAsync(string deviceId, CompletionReport report, CancellationToken ct, long requestSequence = 0);

    /// <summary>Records that the device's launcher found no working updater (cleared by its next check-in).</summary>
    Task ReportUpdaterLostAsync(string deviceId, UpdaterLostReport report, CancellationToken ct, long requestSequence = 0);
}

/// <summary>
/// Thrown by an <see cref="IDeviceGateway"/> when a request is well-formed but cannot be accepted (e.g. unknown
/// product); the HTTP layer answers with <see cref="StatusCode"/> and a ProblemResponse.
/// </summary>
public sealed class DeviceRequestRejectedException(int statusCode, string error, string message) : Exception(message)
{
    /// <summary>HTTP status to answer with (4xx).</summary>
    public int StatusCode { get; } = statusCode;

    /// <summary>Stable machine-readable error code.</summary>
    public string Error { get; } = error;

    /// <summary>When set, sent as <c>Retry-After</c> (whole seconds, rounded up).</summary>
    public TimeSpan? RetryAfter { get; init; }
}
