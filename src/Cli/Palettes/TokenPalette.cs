using System.Globalization;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch token ...</c>: admin API tokens with scopes and an expiry, listed and revoked by name.</summary>
public static class TokenPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Token, new Dictionary<string, ServerHandler>
        {
            ["create"] = CreateAsync,
            ["list"] = ListAsync,
            ["revoke"] = RevokeAsync,
        });

    /// <summary>
    /// Parses <c>--expires</c>: <c>never</c> (0), or a positive whole number followed by s, m, h or d. Returns seconds.
    /// </summary>
    public static long ParseExpiry(string text)
    {
        if (text.Equals("never", StringComparison.OrdinalIgnoreCase)) return 0;
        var unit = text.Length > 1 ? char.ToLowerInvariant(text[^1]) : ' ';
        var factor = unit switch { 's' => 1L, 'm' => 60L, 'h' => 3600L, 'd' => 86_400L, _ => 0L };
        if (factor == 0 || !long.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > long.MaxValue / factor)
            throw new UsageException($"--expires '{text}' is not a duration: give a whole number followed by s, m, h or d (e.g. 30d), or never.");
        return n * factor;
    }

    private static async Task<int> CreateAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var scopes = call.Required("scopes").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var s in scopes.Where(s => s is not (PaletteCatalog.Read or PaletteCatalog.Operate)))
            throw new UsageException($"--scopes contains '{s}'; use read and/or operate, e.g. --scopes read.");
        var expires = call.Optional("expires") is { } e ? ParseExpiry(e) : (long?)null;
        var created = await client.PostAsync<AdminTokenCreated>("/admin/v1/tokens", new AdminTokenCreateRequest(call.Required("name"), scopes, expires), ct)
            .ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, created);
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Created admin token {created.Name} (scopes {string.Join(",", created.Scopes)}; {(created.ExpiresUtc is { } x ? "expires " + Render.Time(x) : "never expires")}).");
            o.WriteLine($"  token  {created.Token}");
            o.WriteLine("  This token is shown only now; revoke it with 'orch token revoke " + created.Name + "'.");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var list = await client.GetAsync<AdminTokenList>("/admin/v1/tokens", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, list);
        else Render.Table(call.Console, ["name", "scopes", "source", "status", "created", "expires", "revoked"],
            list.Tokens.Select(t => (IReadOnlyList<string?>)[t.Name, string.Join(",", t.Scopes), t.Source, t.Status, Render.Time(t.CreatedUtc),
                t.ExpiresUtc is null ? "never" : Render.Time(t.ExpiresUtc), Render.Time(t.RevokedUtc)]));
        return ExitCodes.Success;
    }

    private static async Task<int> RevokeAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var name = call.Positionals[0];
        var view = await client.SendAsync<AdminTokenView>(HttpMethod.Delete, $"/admin/v1/tokens/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else call.Console.Out.WriteLine($"Revoked admin token {view.Name} ({view.Source}); it no longer works on any node.");
        return ExitCodes.Success;
    }
}
