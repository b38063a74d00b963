using Akka.Actor;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Dashboard;

/// <summary>Waves of one rollout as the dashboard draws them.</summary>
/// <param name="Wave">Wave number (1-based).</param>
/// <param name="Total">Devices in the wave.</param>
/// <param name="Pending">Not assigned yet.</param>
/// <param name="InProgress">Assigned, not finished.</param>
/// <param name="Succeeded">Installed the target.</param>
/// <param name="Failed">Failed.</param>
/// <param name="Failing">Of <paramref name="InProgress"/>: failing but still retrying.</param>
public sealed record DashboardWave(int Wave, int Total, int Pending, int InProgress, int Succeeded, int Failed, int Failing = 0);

/// <summary>A failed device of a rollout.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="Wave">Wave number.</param>
/// <param name="Reason">Why.</param>
/// <param name="Failing">True when the device is failing but still retrying (not given up).</param>
public sealed record DashboardRolloutFailure(string DeviceId, int Wave, string Reason, bool Failing = false);

/// <summary>One rollout on the dashboard.</summary>
/// <param name="RolloutId">Id.</param>
/// <param name="Product">Product.</param>
/// <param name="Version">Target version.</param>
/// <param name="Status">Status name.</param>
/// <param name="CurrentWave">Current wave (1-based).</param>
/// <param name="PauseReason">Why it paused / was aborted, if so.</param>
/// <param name="Waves">Per-wave counters.</param>
/// <param name="Failures">Failed devices.</param>
/// <param name="UpdatedAt">Time of its last event.</param>
/// <param name="Rollback">After a rollback: devices back on their previous version (from their own state); null otherwise.</param>
public sealed record DashboardRollout(string RolloutId, string Product, string Version, string Status, int CurrentWave, string? PauseReason,
    IReadOnlyList<DashboardWave> Waves, IReadOnlyList<DashboardRolloutFailure> Failures, DateTimeOffset UpdatedAt, RollbackCounters? Rollback = null);

/// <summary>Answer of <c>GET /admin/v1/dashboard</c>: everything the page shows, in one poll.</summary>
/// <param name="Cluster">Cluster members.</param>
/// <param name="Fleet">Device state counts, versions, failures.</param>
/// <param name="RolloutsAvailable">False when this node cannot reach a rollout coordinator.</param>
/// <param name="Rollouts">One page of rollouts: unfinished first, then the most recently changed.</param>
/// <param name="Channels">Every product's channels with their current release, from this node's channel cache (empty before it loaded).</param>
/// <param name="Changes">The newest entries of the audit trail: who changed what, and why.</param>
/// <param name="RolloutsTotal">Rollouts in all.</param>
/// <param name="RolloutsPage">The page shown (0-based, <c>?rolloutPage=</c>).</param>
/// <param name="RolloutsPageSize">Rollouts per page.</param>
public sealed record DashboardView(ClusterView Cluster, FleetView Fleet, bool RolloutsAvailable, IReadOnlyList<DashboardRollout> Rollouts,
    IReadOnlyList<Messages.Channels.ChannelView>? Channels = null, IReadOnlyList<Messages.Admin.AuditEntry>? Changes = null,
    int RolloutsTotal = 0, int RolloutsPage = 0, int RolloutsPageSize = DashboardRollouts.PageSize);

/// <summary>
/// The fleet dashboard: a static page (<c>GET /</c>, <c>/dashboard/app.js</c>, <c>/dashboard/app.css</c>, embedded in
/// the assembly) and its one data route <c>GET /admin/v1/dashboard</c> (read scope). The page holds no data and no
/// token; see Assets/app.js for how the token is kept. A strict Content-Security-Policy allows only this origin's
/// script, so injected markup could not run even if it got into the DOM.
/// </summary>
public static class DashboardPage
{
    private const string Csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>Maps the page, its assets and its data route.</summary>
    public static void MapDashboard(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", (HttpContext ctx) => Asset(ctx, "index.html", "text/html; charset=utf-8"));
        app.MapGet("/dashboard/app.js", (HttpContext ctx) => Asset(ctx, "app.js", "text/javascript; charset=utf-8"));
        app.MapGet("/dashboard/app.css", (HttpContext ctx) => Asset(ctx, "app.css", "text/css; charset=utf-8"));
        app.MapGet("/admin/v1/dashboard", DataAsync);
    }

    private static IResult Asset(HttpContext ctx, string name, string contentType)
    {
        using var stream = typeof(DashboardPage).Assembly.GetManifestResourceStream("Orchestrator.Node.Dashboard.Assets." + name)
            ?? throw new InvalidOperationException($"Dashboard asset {name} is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        ctx.Response.Headers.ContentSecurityPolicy = Csp;
        ctx.Response.Headers.XContentTypeOptions = "nosniff";
        ctx.Response.Headers.CacheControl = "no-cache";
        return Results.Content(reader.ReadToEnd(), contentType);
    }

    /// <summary>Audit entries the page shows.</summary>
    public const int RecentChanges = 15;

    private static async Task<IResult> DataAsync(HttpContext ctx, ActorSystem system, FleetViewCache fleetCache, Channels.ChannelCache channels, Audit.AuditLog audit)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        ctx.Response.Headers.CacheControl = "no-store";
        FleetView fleet;
        try { fleet = await fleetCache.GetAsync(ctx.RequestAborted).ConfigureAwait(false); }
        catch (RegistryLimitExceededException ex) { return DeviceQueryEndpoints.RegistryLimitProblem(ex); }
        var page = 0;
        if (ctx.Request.Query.TryGetValue("rolloutPage", out var p) && !string.IsNullOrEmpty(p)
            && (!int.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out page) || page > 100_000))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_query", $"Query parameter rolloutPage='{p}' is invalid: a whole number from 0 (the first page).");
        var (available, rollouts, total) = await DashboardRollouts.ReadAsync(ctx.RequestServices, page, ctx.RequestAborted).ConfigureAwait(false);
        var changes = await audit.QueryAsync(null, null, RecentChanges, ctx.RequestAborted).ConfigureAwait(false);
        return TypedResults.Json(new DashboardView(ClusterEndpoints.Describe(system), fleet, available, rollouts, channels.View?.Channels ?? [], changes,
            total, page), AdminJson.Options);
    }
}
