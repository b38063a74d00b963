using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>The device API of the gateway, as the update session needs it (docs/protocol.md).</summary>
public interface IGatewayClient
{
    /// <summary>Reports identity, installed version and inventory; the answer says None, Upgrade or Repair.</summary>
    Task<CheckInResponse> CheckInAsync(CheckInRequest request, CancellationToken ct);

    /// <summary>Download progress (best effort: a failure to report never fails the session).</summary>
    Task ReportProgressAsync(ProgressReport report, CancellationToken ct);

    /// <summary>A failed attempt (best effort); returns the server's Retry-After, if it asked the device to wait.</summary>
    Task<TimeSpan?> ReportFailureAsync(FailureReport report, CancellationToken ct);

    /// <summary>Install finished and verified.</summary>
    Task ReportCompletionAsync(CompletionReport report, CancellationToken ct);

    /// <summary>The launcher found no working updater (best effort; the next check-in clears it).</summary>
    Task ReportUpdaterLostAsync(UpdaterLostReport report, CancellationToken ct);
}

/// <summary>The gateway refused or could not answer a request.</summary>
/// <param name="message">What happened.</param>
/// <param name="statusCode">HTTP status, when there was a response.</param>
/// <param name="retryAfter">Server-requested wait (429/503).</param>
/// <param name="error">The problem's error code, when the response carried one.</param>
public sealed class GatewayException(string message, int? statusCode = null, TimeSpan? retryAfter = null, string? error = null) : Exception(message)
{
    /// <summary>HTTP status, when there was a response.</summary>
    public int? StatusCode { get; } = statusCode;

    /// <summary>The problem's error code (e.g. <c>node_busy</c>), when the response carried one.</summary>
    public string? Error { get; } = error;

    /// <summary>Server-requested wait before the next attempt.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}
