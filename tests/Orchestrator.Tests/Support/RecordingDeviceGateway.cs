using System.Collections.Concurrent;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Tests.Support;

/// <summary>
/// In-test device side: a real decision rule (assigned version per product; repair when the reported digest differs
/// from the assigned digest) and a record of every call, so tests can assert that rejected requests never arrive.
/// </summary>
public sealed class RecordingDeviceGateway : IDeviceGateway
{
    public ConcurrentQueue<(string DeviceId, object Request)> Calls { get; } = new();
    public ConcurrentDictionary<string, (string Version, long VersionId, string Digest)> Assigned { get; } = new();

    /// <summary>While set, check-ins wait for it after they are recorded (a slow device actor).</summary>
    public Task? Hold { get; set; }

    public async ValueTask<CheckInAnswer> CheckInAsync(string deviceId, CheckInRequest request, CancellationToken ct, long requestSequence = 0)
    {
        Calls.Enqueue((deviceId, request));
        if (Hold is { } hold) await hold;
        if (!Assigned.TryGetValue(request.Product, out var a))
            throw new DeviceRequestRejectedException(404, "unknown_product", $"No release of product '{request.Product}'.");
        var manifest = $"manifests/{request.Product}/{a.Version}.json";
        if (request.InstalledVersionId < a.VersionId)
            return new CheckInResponse(UpdateAction.Upgrade, a.Version, a.VersionId, manifest, null, null, 60, null);
        if (request.InventoryDigest != a.Digest)
            return new CheckInResponse(UpdateAction.Repair, a.Version, a.VersionId, manifest, ["bin/app"], null, 60, null);
        return new CheckInResponse(UpdateAction.None, null, null, null, null, null, 60, null);
    }

    public Task ReportProgressAsync(string deviceId, ProgressReport report, CancellationToken ct, long requestSequence = 0) { Calls.Enqueue((deviceId, report)); return Task.CompletedTask; }
    public Task<TimeSpan?> ReportFailureAsync(string deviceId, FailureReport report, CancellationToken ct, long requestSequence = 0) { Calls.Enqueue((deviceId, report)); return Task.FromResult<TimeSpan?>(TimeSpan.FromSeconds(report.Attempt * 2)); }
    public Task ReportCompletionAsync(string deviceId, CompletionReport report, CancellationToken ct, long requestSequence = 0) { Calls.Enqueue((deviceId, report)); return Task.CompletedTask; }
    public Task ReportUpdaterLostAsync(string deviceId, UpdaterLostReport report, CancellationToken ct, long requestSequence = 0) { Calls.Enqueue((deviceId, report)); return Task.CompletedTask; }
}
