using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Trust;

/// <summary>The trust lines of <c>orch-agent status</c>: which root the device trusts and whether it is stale.</summary>
public static class AgentStatus
{
    /// <summary>Writes the trust root and directive lines.</summary>
    public static void Write(TextWriter stdout, AgentConfig config, ZoneLayout layout, HiddenZone hidden)
    {
        var (state, bytes) = hidden.Read(HiddenItem.TrustRoot);
        TrustAnchor? anchor = null;
        if (state == HiddenItemState.Ok)
        {
            try { anchor = TrustAnchor.Load(bytes!, "trust root"); }
            catch (Exception e) when (e is InvalidInputException or IntegrityException) { }
        }
        stdout.WriteLine($"trust     {(anchor is null ? "trust root unusable" : anchor.Root is { } r ? $"root version {r.Version} (expires {r.ExpiresUtc:u}); directives required" : "legacy release key (no director: directives not checked)")}");
        if (anchor?.RequiresDirectives != true) return;
        var path = TrustState.PathFor(layout);
        if (!File.Exists(path))
        {
            stdout.WriteLine("directive none yet (no session has run)");
            return;
        }
        var now = DateTimeOffset.UtcNow;
        var s = TrustState.Load(layout, now);
        var limit = TimeSpan.FromMinutes(config.StaleAfterMinutes);
        var last = s.LastValidDirectiveUtc is { } at ? $"last valid {at:u}" : "never received a valid one";
        stdout.WriteLine(s.IsStale(now, limit)
            ? $"directive STALE: {last}; nothing valid for {s.WithoutDirective(now):g} (limit {limit:g})"
            : $"directive {last}; fresh (limit {limit:g})");
    }
}
