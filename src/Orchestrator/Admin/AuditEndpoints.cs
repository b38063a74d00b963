using System.Globalization;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Audit;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Admin;

/// <summary><c>GET /admin/v1/audit</c> (scope read): the audit trail, newest first, filtered by time and target.</summary>
public static class AuditEndpoints
{
    /// <summary>Entries returned when the caller names no limit.</summary>
    public const int DefaultLimit = 100;

    /// <summary>Maps the route.</summary>
    public static void MapAuditAdminApi(this IEndpointRouteBuilder app) => app.MapGet("/admin/v1/audit", ListAsync);

    private static async Task<IResult> ListAsync(HttpContext ctx, AuditLog log, string? since, string? target, string? limit)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        DateTimeOffset? from = null;
        if (since is not null)
        {
            if (!DateTimeOffset.TryParse(since, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
                return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_since",
                    $"since '{since}' is not a timestamp; give an ISO-8601 time such as 2026-12-04T16:00:00Z.");
            from = t;
        }
        var n = DefaultLimit;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out n) || n is < 1 or > AuditLog.MaxLimit))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_limit", $"limit '{limit}' must be a whole number from 1 to {AuditLog.MaxLimit}.");
        if (target is { Length: 0 or > 256 })
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_target", "target must be 1-256 characters (a rollout, device, channel or token name).");
        var entries = await log.QueryAsync(from, target, n, ctx.RequestAborted).ConfigureAwait(false);
        return TypedResults.Json(new AuditList(entries), HttpProblems.Json);
    }
}
