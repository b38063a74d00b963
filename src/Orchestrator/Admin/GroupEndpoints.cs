using Akka.Hosting;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Groups;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>
/// <c>/admin/v1/groups</c>: saved device groups (list, show with the devices they match now, save, delete). Rollouts
/// name them in their selector and copy the definition at creation.
/// </summary>
public static class GroupEndpoints
{
    private static readonly TimeSpan RegistryTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Maps the routes.</summary>
    public static void MapGroupAdminApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1/groups");
        g.MapGet("", (HttpContext ctx, DeviceGroupStore groups, NodeSettings settings) => LimitedAsync(() => ListAsync(ctx, groups, settings)));
        g.MapGet("/{name}", (string name, HttpContext ctx, DeviceGroupStore groups, NodeSettings settings) => LimitedAsync(() => ShowAsync(name, ctx, groups, settings)));
        g.MapPut("/{name}", (string name, HttpContext ctx, DeviceGroupStore groups, NodeSettings settings, TimeProvider clock) =>
            LimitedAsync(() => SaveAsync(name, ctx, groups, settings, clock)));
        g.MapDelete("/{name}", DeleteAsync);
    }

    private static async Task<IResult> LimitedAsync(Func<Task<IResult>> handler)
    {
        try { return await handler().ConfigureAwait(false); }
        catch (RegistryLimitExceededException ex) { return DeviceQueryEndpoints.RegistryLimitProblem(ex); }
    }

    private static IResult? InvalidName(string name) => DeviceGroupStore.IsValidName(name)
        ? null
        : HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_group", $"name: group name '{name}' must match {DeviceGroupStore.NamePattern} (lower-case letters, digits, '-').");

    private static async Task<IResult> ListAsync(HttpContext ctx, DeviceGroupStore groups, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var all = await groups.ListAsync(ctx.RequestAborted).ConfigureAwait(false);
        var devices = await DevicesAsync(ctx, settings).ConfigureAwait(false);
        return AdminResults.Ok(new DeviceGroupList([.. all.Select(g => View(g, devices))]));
    }

    private static async Task<IResult> ShowAsync(string name, HttpContext ctx, DeviceGroupStore groups, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (InvalidName(name) is { } bad) return bad;
        var found = await groups.FindAsync(name, ctx.RequestAborted).ConfigureAwait(false);
        if (found is null)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "group_not_found", $"There is no group '{name}'; `orch group list` shows the groups.");
        return AdminResults.Ok(View(found, await DevicesAsync(ctx, settings).ConfigureAwait(false)));
    }

    private static async Task<IResult> SaveAsync(string name, HttpContext ctx, DeviceGroupStore groups, NodeSettings settings, TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidName(name) is { } bad) return bad;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceGroupRequest>(ctx.Request, 4 * 1024 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        var group = new DeviceGroup(name, body!.Tags ?? [], body.DeviceIds ?? [], body.Attributes);
        if (DeviceGroupStore.Problem(group) is { } problem)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_group", $"{problem.Field}: {problem.Message} Nothing was saved.");
        if (groups.IsConfigured(name))
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "group_configured",
                $"Group '{name}' is configured on the node (Rollouts:Groups:{name}) and cannot be saved over the API; choose another name.");
        if (await groups.FindAsync(name, ctx.RequestAborted).ConfigureAwait(false) is null
            && await groups.CountAsync(ctx.RequestAborted).ConfigureAwait(false) >= DeviceGroupStore.MaxGroups)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "too_many_groups",
                $"{DeviceGroupStore.MaxGroups} groups are saved already; delete unused ones (orch group delete NAME) first.");
        var who = ctx.Items[Audit.AuditMiddleware.TokenItem] as string ?? "admin-api";
        var replaced = await groups.SaveAsync(group, who, clock.GetUtcNow(), ctx.RequestAborted).ConfigureAwait(false);
        var saved = await groups.FindAsync(name, ctx.RequestAborted).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Group '{name}' was saved but cannot be read back.");
        var view = View(saved, await DevicesAsync(ctx, settings).ConfigureAwait(false));
        return replaced ? AdminResults.Ok(view) : TypedResults.Json(view, AdminJson.Options, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> DeleteAsync(string name, HttpContext ctx, DeviceGroupStore groups)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidName(name) is { } bad) return bad;
        if (groups.IsConfigured(name))
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "group_configured",
                $"Group '{name}' is configured on the node (Rollouts:Groups:{name}); remove it from the node's configuration instead.");
        return await groups.DeleteAsync(name, ctx.RequestAborted).ConfigureAwait(false)
            ? TypedResults.NoContent()
            : HttpProblems.Problem(StatusCodes.Status404NotFound, "group_not_found", $"There is no saved group '{name}'; nothing was deleted.");
    }

    // Devices are matched against the registry of this node; without one (no gateway role) the counts stay empty.
    private static async Task<IReadOnlyList<DeviceSummary>> DevicesAsync(HttpContext ctx, NodeSettings settings)
    {
        if (ctx.RequestServices.GetService<IRequiredActor<DeviceRegistryActor>>() is not { } registry) return [];
        var list = await RegistrySelection.AllAsync(registry.ActorRef, new QueryDevices(null, null, null, null, settings.Devices.RegistryQueryLimit),
            RegistryTimeout, ctx.RequestAborted).ConfigureAwait(false);
        return list.Devices;
    }

    private static DeviceGroupView View(SavedDeviceGroup saved, IReadOnlyList<DeviceSummary> devices)
    {
        var g = saved.Group;
        var members = devices.Where(g.Matches).Select(d => d.DeviceId).Order(StringComparer.Ordinal).ToList();
        return new DeviceGroupView(g.Name, saved.Source, g.Tags, g.DeviceIds, g.Attributes, saved.SavedBy, saved.SavedAt, members.Count, [.. members.Take(20)]);
    }
}
