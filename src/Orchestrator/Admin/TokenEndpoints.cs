using System.Text.RegularExpressions;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Admin;

/// <summary>
/// <c>/admin/v1/tokens</c> (scope operate): create named admin tokens with scopes and an expiry, list them, revoke
/// them by name (created, configured and bootstrap tokens alike). Changes are in the node database, so every node of
/// the cluster applies them within <see cref="AdminTokens.RefreshInterval"/> (this node at once).
/// </summary>
public static partial class TokenEndpoints
{
    /// <summary>Lifetime of a token created without an explicit expiry.</summary>
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromDays(90);

    /// <summary>Longest lifetime accepted (ten years); 0 means never.</summary>
    public const long MaxLifetimeSeconds = 10L * 366 * 24 * 3600;

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z")]
    private static partial Regex NamePattern();

    /// <summary>Maps the routes.</summary>
    public static void MapTokenAdmin(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1/tokens");
        g.MapPost("", CreateAsync);
        g.MapGet("", ListAsync);
        g.MapDelete("/{name}", RevokeAsync);
    }

    private static async Task<IResult> CreateAsync(HttpContext ctx, AdminTokenStore store, AdminTokens tokens, TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        var (body, error) = await HttpProblems.ReadJsonAsync<AdminTokenCreateRequest>(ctx.Request, 4096, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        var request = body!;
        if (request.Name is null || !NamePattern().IsMatch(request.Name))
            return Invalid($"name '{request.Name}' is not a valid token name: 1-64 letters, digits, '.', '_', '-', starting with a letter or digit.");
        var scopes = (request.Scopes ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (scopes.Count == 0 || scopes.Any(s => s is not (AdminScopes.Read or AdminScopes.Operate)))
            return Invalid($"scopes [{string.Join(", ", request.Scopes ?? [])}] must be one or both of read, operate.");
        if (request.ExpiresInSeconds is < 0 or > MaxLifetimeSeconds)
            return Invalid($"expiresInSeconds {request.ExpiresInSeconds} is out of range: give 1..{MaxLifetimeSeconds} seconds, or 0 for a token that never expires.");
        if (tokens.IsConfigured(request.Name))
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "already_exists",
                $"'{request.Name}' is a configured token (Admin:Tokens or the bootstrap token); choose another name.");
        var now = clock.GetUtcNow();
        DateTimeOffset? expires = request.ExpiresInSeconds switch
        {
            null => now + DefaultLifetime,
            0 => null,
            { } s => now.AddSeconds(s),
        };
        var created = await store.CreateAsync(request.Name, scopes, expires, ctx.RequestAborted).ConfigureAwait(false);
        if (created is not { } c)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "already_exists",
                $"A token named '{request.Name}' already exists (names are never reused, also after a revocation); choose another name.");
        tokens.Refresh(await store.LoadAsync(ctx.RequestAborted).ConfigureAwait(false));
        return TypedResults.Json(new AdminTokenCreated(c.Record.Name, c.Token, c.Record.Scopes, c.Record.CreatedUtc, c.Record.ExpiresUtc), HttpProblems.Json,
            statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, AdminTokenStore store, AdminTokens tokens, TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        tokens.Refresh(await store.LoadAsync(ctx.RequestAborted).ConfigureAwait(false));
        return TypedResults.Json(new AdminTokenList(tokens.List(clock.GetUtcNow())), HttpProblems.Json);
    }

    private static async Task<IResult> RevokeAsync(string name, HttpContext ctx, AdminTokenStore store, AdminTokens tokens, TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (!NamePattern().IsMatch(name))
            return Invalid($"'{name}' is not a valid token name: 1-64 letters, digits, '.', '_', '-'.");
        if (tokens.Configured(name) is { } configured)
            await store.RevokeConfiguredAsync(name, configured.Sha256, configured.Scopes, ctx.RequestAborted).ConfigureAwait(false);
        else if (!await store.RevokeCreatedAsync(name, ctx.RequestAborted).ConfigureAwait(false))
        {
            tokens.Refresh(await store.LoadAsync(ctx.RequestAborted).ConfigureAwait(false));
            return tokens.List(clock.GetUtcNow()).Any(t => t.Name == name)
                ? HttpProblems.Problem(StatusCodes.Status409Conflict, "invalid_state", $"The token '{name}' is already revoked.")
                : HttpProblems.Problem(StatusCodes.Status404NotFound, "token_not_found", $"No admin token is named '{name}'; orch token list shows them.");
        }
        tokens.Refresh(await store.LoadAsync(ctx.RequestAborted).ConfigureAwait(false));
        return TypedResults.Json(tokens.List(clock.GetUtcNow()).First(t => t.Name == name), HttpProblems.Json);
    }

    private static IResult Invalid(string message) => HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_token_request", message);
}
