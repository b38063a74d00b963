using System.Text.Json;

namespace Orchestrator.Node.Audit;

/// <summary>
/// Writes every changing admin request (<c>/admin/v1</c>, any method but GET/HEAD) that presented a valid token to the
/// <see cref="AuditLog"/>: the token's name, the route, its values, the body's <c>reason</c> and the answer's status. It
/// runs around the endpoint, so it covers every admin route, present and future, without each one calling it.
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, AuditLog log, TimeProvider clock, ILogger<AuditMiddleware> logger)
{
    /// <summary><see cref="HttpContext.Items"/> key under which admin authorization leaves the valid token's name.</summary>
    public const string TokenItem = "orch.admin.token";

    /// <summary>Bodies larger than this are not searched for a reason (chunk uploads, batch registrations).</summary>
    public const int MaxReasonBodyBytes = 64 * 1024;

    /// <summary>Runs the request and records it.</summary>
    public Task InvokeAsync(HttpContext ctx)
    {
        // Passed through without an async frame of this middleware: every device request comes through here.
        var request = ctx.Request;
        return HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || !request.Path.StartsWithSegments("/admin/v1")
            ? next(ctx)
            : RunAndRecordAsync(ctx);
    }

    private async Task RunAndRecordAsync(HttpContext ctx)
    {
        var request = ctx.Request;
        var readReason = request.ContentLength is null or (> 0 and <= MaxReasonBodyBytes)
            && request.ContentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true;
        if (readReason) request.EnableBuffering();
        await next(ctx).ConfigureAwait(false);
        if (ctx.Items[TokenItem] is not string token) return; // no valid token: nobody to attribute it to, and nothing changed
        if (ctx.GetEndpoint()?.Metadata.GetMetadata<NotAudited>() is not null) return;
        var reason = readReason ? await ReasonAsync(request).ConfigureAwait(false) : null;
        var pattern = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? request.Path.Value ?? "";
        var route = pattern.Trim('/');
        if (route.StartsWith("admin/v1/", StringComparison.Ordinal)) route = route["admin/v1/".Length..];
        var action = $"{request.Method} {route}";
        var target = string.Join(", ", request.RouteValues.Where(v => v.Value is string).Select(v => $"{v.Key}={v.Value}"));
        try
        {
            await log.AppendAsync(clock.GetUtcNow(), token, action, target.Length == 0 ? null : target, reason, ctx.Response.StatusCode).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException)
        {
            // The action itself already happened and was answered; losing its audit row must be loud, not silent.
            logger.LogError(e, "Audit entry not written: {Token} {Action} {Target} -> {Status}", token, action, target, ctx.Response.StatusCode);
        }
    }

    private static async Task<string?> ReasonAsync(HttpRequest request)
    {
        try
        {
            request.Body.Position = 0;
            var buffer = new byte[MaxReasonBodyBytes + 1];
            var length = 0;
            int n;
            while (length < buffer.Length && (n = await request.Body.ReadAsync(buffer.AsMemory(length)).ConfigureAwait(false)) > 0) length += n;
            if (length == 0 || length > MaxReasonBodyBytes) return null;
            using var doc = JsonDocument.Parse(buffer.AsMemory(0, length));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String
                ? r.GetString()
                : null;
        }
        catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
        {
            return null; // the endpoint already refused or accepted the body; an unreadable one simply has no reason
        }
    }
}

/// <summary>
/// Endpoint metadata: the route changes nothing an operator can see (e.g. a content-addressed chunk object that only a
/// later, audited commit makes part of a release), so <see cref="AuditMiddleware"/> records no row for it.
/// </summary>
public sealed class NotAudited;
