using System.Text.Json;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Trust;

/// <summary>
/// When the agent last accepted a valid, fresh director-signed directive (free zone, <c>.orch-agent/trust-state.json</c>).
/// Not a security record: deleting it only makes the device report itself stale sooner.
/// </summary>
/// <param name="FirstSessionUtc">The first session that found no state (the clock for a device that never got a directive).</param>
/// <param name="LastValidDirectiveUtc">The last directive accepted; null when none yet.</param>
public sealed record TrustState(DateTimeOffset FirstSessionUtc, DateTimeOffset? LastValidDirectiveUtc)
{
    /// <summary>The state file of a layout.</summary>
    public static string PathFor(ZoneLayout layout) => Path.Combine(layout.Work, "trust-state.json");

    /// <summary>Reads the state, starting one at <paramref name="now"/> when there is none (or it is unreadable).</summary>
    public static TrustState Load(ZoneLayout layout, DateTimeOffset now)
    {
        var path = PathFor(layout);
        try
        {
            if (File.Exists(path) && JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJsonContext.Default.TrustState) is { } s) return s;
        }
        catch (Exception e) when (e is JsonException or IOException) { }
        var fresh = new TrustState(now, null);
        fresh.Save(layout);
        return fresh;
    }

    /// <summary>Writes the state.</summary>
    public void Save(ZoneLayout layout)
    {
        Directory.CreateDirectory(layout.Work);
        DurableFile.WriteAllBytes(PathFor(layout), JsonSerializer.SerializeToUtf8Bytes(this, AgentJsonContext.Default.TrustState));
    }

    /// <summary>How long the agent has been without a valid directive.</summary>
    public TimeSpan WithoutDirective(DateTimeOffset now) => now - (LastValidDirectiveUtc ?? FirstSessionUtc);

    /// <summary>True when that is longer than <paramref name="limit"/>.</summary>
    public bool IsStale(DateTimeOffset now, TimeSpan limit) => WithoutDirective(now) > limit;
}
