using System.Globalization;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch audit list</c>: the node's audit trail of changing admin requests.</summary>
public static class AuditPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Audit, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
        });

    /// <summary>Parses <c>--since</c>: an ISO-8601 time, or an age (whole number + s, m, h or d) before <paramref name="now"/>.</summary>
    public static DateTimeOffset ParseSince(string text, DateTimeOffset now)
    {
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) && text.Contains('-', StringComparison.Ordinal))
            return time;
        try
        {
            var seconds = TokenPalette.ParseExpiry(text);
            if (seconds > 0) return now.AddSeconds(-seconds);
        }
        catch (UsageException) { }
        catch (ArgumentOutOfRangeException) { }
        throw new UsageException($"--since '{text}' is neither a time (e.g. 2026-12-04T16:00:00Z) nor an age (e.g. 30m, 12h, 7d).");
    }

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var query = new List<string>();
        if (call.Optional("since") is { } since) query.Add("since=" + Uri.EscapeDataString(ParseSince(since, DateTimeOffset.UtcNow).ToString("O", CultureInfo.InvariantCulture)));
        if (call.Optional("target") is { } target) query.Add("target=" + Uri.EscapeDataString(target));
        if (call.OptionalLong("limit", 1, 10_000) is { } limit) query.Add("limit=" + limit.ToString(CultureInfo.InvariantCulture));
        var list = await client.GetAsync<AuditList>("/admin/v1/audit" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, list);
        else Render.Table(call.Console, ["time", "token", "action", "target", "reason", "status"],
            list.Entries.Select(e => (IReadOnlyList<string?>)[Render.Time(e.TimeUtc), e.Token, e.Action, e.Target, e.Reason,
                e.Status.ToString(CultureInfo.InvariantCulture)]));
        return ExitCodes.Success;
    }
}
