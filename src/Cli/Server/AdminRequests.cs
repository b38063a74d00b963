using System.Text.Json.Serialization;

namespace Orchestrator.Cli.Server;

// Request bodies orch sends to the admin API. They mirror the node's request records
// (src/Orchestrator/Admin/*Endpoints.cs), which orch does not reference; null fields take the node's defaults.

/// <summary>Body of <c>POST /admin/v1/devices/{id}/credential</c>.</summary>
internal sealed record CredentialRequest(bool Rotate);

/// <summary>Body of <c>POST /admin/v1/chunks/gc</c>.</summary>
internal sealed record ChunkGcRequest(bool DryRun, long GraceMinutes);

/// <summary>Body of the rollout operator commands (<c>POST /admin/v1/rollouts/{id}/{action}</c>).</summary>
internal sealed record RolloutActionRequest(string? Reason);

/// <summary>Device selector of <see cref="RolloutCreateRequest"/>.</summary>
internal sealed record RolloutSelectorRequest(string[]? Tags, string[]? DeviceIds, string[]? Groups,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Dictionary<string, string>? Attributes = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string[]? InstalledVersions = null);

/// <summary>One wave: exactly one of a device count and a percentage (the other is left out of the JSON).</summary>
internal sealed record RolloutWaveRequest(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Count,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Percent);

/// <summary>Daily UTC maintenance window, <c>HH:mm</c>.</summary>
internal sealed record RolloutWindowRequest(string Start, string End);

/// <summary>Body of <c>POST /admin/v1/rollouts</c>.</summary>
internal sealed record RolloutCreateRequest(
    string? Id, string Product, string Version, RolloutSelectorRequest Selector, List<RolloutWaveRequest>? Waves, bool? RandomizeOrder,
    int? Seed, int? MaxConcurrent, long? BandwidthBytesPerSecond, double? SuccessThreshold, double? ErrorThreshold, int? SoakSeconds,
    int? MaxAttemptsPerDevice, int? DeviceTimeoutSeconds, DateTimeOffset? StartAt, RolloutWindowRequest? MaintenanceWindow, string? Operator,
    int? FailingAfterAttempts = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Channel = null);
