using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>Admin API v1 for channels (<c>/admin/v1/channels...</c>) and device membership (<c>/admin/v1/devices/{id}/channel</c>).</summary>
public static class ChannelEndpoints
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Maps the channel routes.</summary>
    public static void MapChannelAdminApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapGet("/channels", ListAsync);
        g.MapGet("/channels/{product}/{channel}", ShowAsync);
        g.MapPost("/channels/{product}/{channel}", SetAsync);
        g.MapPost("/devices/{deviceId}/channel", SetDeviceChannelAsync);
    }

    private static IResult Invalid(string code, string message) => HttpProblems.Problem(StatusCodes.Status400BadRequest, code, message);

    private static IResult Unavailable() => HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "channels_unavailable",
        "The channel directory did not answer in time (is a node with role 'rollouts' up?); nothing was changed. Try again.");

    // Store channel files of channels the directory lacks are seeded first, so the answer shows what check-ins will use.
    private static async Task<ChannelDirectoryView> SeededViewAsync(HttpContext ctx, string? product)
    {
        var cache = ctx.RequestServices.GetRequiredService<ChannelCache>();
        var seeder = ctx.RequestServices.GetRequiredService<StoreChannelSeeder>();
        var store = ctx.RequestServices.GetRequiredService<FileSystemStore>();
        var view = await cache.RefreshAsync(ctx.RequestAborted).ConfigureAwait(false);
        foreach (var p in product is null ? store.EnumerateProducts() : [product])
        {
            var known = view.Channels.Where(c => c.Product == p).Select(c => new ChannelTarget(c.Channel, c.Current, [])).ToList();
            await seeder.SeedMissingAsync(p, known, ctx.RequestAborted, recheckNow: true).ConfigureAwait(false);
        }
        var fresh = cache.View ?? view;
        return product is null ? fresh : fresh with { Channels = fresh.Channels.Where(c => c.Product == product).ToList() };
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, string? product)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (product is not null && !StoreNames.IsValidProduct(product))
            return Invalid("invalid_product", ChannelRules.Problem("product", product)!);
        try { return AdminResults.Ok(await SeededViewAsync(ctx, product).ConfigureAwait(false)); }
        catch (Exception e) when (e is ChannelsUnavailableException or AskTimeoutException) { return Unavailable(); }
    }

    private static async Task<IResult> ShowAsync(string product, string channel, HttpContext ctx, IRequiredActor<DeviceRegistryActor> registry,
        NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if ((ChannelRules.Problem("product", product) ?? ChannelRules.Problem("channel", channel)) is { } bad) return Invalid("invalid_channel", bad);
        ChannelDirectoryView view;
        try { view = await SeededViewAsync(ctx, product).ConfigureAwait(false); }
        catch (Exception e) when (e is ChannelsUnavailableException or AskTimeoutException) { return Unavailable(); }
        var found = view.Channels.FirstOrDefault(c => c.Channel == channel);
        if (found is null)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "channel_not_found",
                $"Product '{product}' has no channel '{channel}'; set one with orch channel set {product} {channel} VERSION " +
                $"(existing: {string.Join(", ", view.Channels.Select(c => c.Channel).DefaultIfEmpty("none"))}).");
        DeviceList devices;
        try
        {
            devices = await RegistrySelection.AllAsync(registry.ActorRef,
                new QueryDevices(null, null, null, null, settings.Devices.RegistryQueryLimit), AskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (RegistryLimitExceededException ex) { return HttpProblems.Problem(StatusCodes.Status507InsufficientStorage, "registry_limit", ex.Message); }
        var members = devices.Devices.Where(d => d.Product == product && ChannelRules.ChannelOf(d.Tags) == channel).ToList();
        var versions = members.GroupBy(d => d.InstalledVersionId).Select(g => new ChannelVersionCount(g.Key, g.Count()))
            .OrderByDescending(v => v.Devices).ThenByDescending(v => v.VersionId).ToList();
        var onCurrent = found.Current is { } cur ? members.Count(d => d.InstalledVersionId == cur.VersionId) : 0;
        return AdminResults.Ok(new ChannelDetailView(found, members.Count, onCurrent, versions));
    }

    private static async Task<IResult> SetAsync(string product, string channel, HttpContext ctx, FileSystemStore store, ChannelCache cache)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if ((ChannelRules.Problem("product", product) ?? ChannelRules.Problem("channel", channel)) is { } bad) return Invalid("invalid_channel", bad);
        var (body, error) = await HttpProblems.ReadJsonAsync<ChannelSetRequest>(ctx.Request, 16 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (string.IsNullOrWhiteSpace(body!.Version))
            return Invalid("invalid_version", "version: give the published version string to point the channel at, e.g. {\"version\":\"2.1.0\"}.");
        if (body.Operator is { } op && string.IsNullOrWhiteSpace(op)) return Invalid("invalid_channel", "operator: must not be blank; omit it to use \"operator\".");
        if (body.Reason is { Length: > 1000 }) return Invalid("invalid_channel", "reason: at most 1000 characters.");
        ChannelRelease? release;
        string? problem;
        try { (release, problem) = StoreReleases.Find(store, product, body.Version); }
        catch (InvalidInputException ex) { return HttpProblems.Problem(StatusCodes.Status409Conflict, "store_unreadable", $"The index of '{product}' is unreadable: {ex.Message}"); }
        if (release is null) return Invalid("invalid_version", $"version: {problem} Nothing was changed.");
        object answer;
        try
        {
            answer = await cache.AskDirectoryAsync(new SetChannelRelease(product, channel, release, body.Operator ?? "operator",
                body.Reason ?? "set by operator"), ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (AskTimeoutException) { return Unavailable(); }
        switch (answer)
        {
            case ChannelView v:
                // This node's check-ins see the change at once; the others within their cache's publish or refresh.
                try { await cache.RefreshAsync(ctx.RequestAborted).ConfigureAwait(false); }
                catch (ChannelsUnavailableException) { }
                return AdminResults.Ok(v);
            case ChannelRejected r:
                return HttpProblems.Problem(r.Code == "channel_in_rollout" ? StatusCodes.Status409Conflict : StatusCodes.Status400BadRequest, r.Code, r.Message);
            default:
                return HttpProblems.Problem(StatusCodes.Status500InternalServerError, "unexpected_answer", $"The channel directory answered {answer.GetType().Name}.");
        }
    }

    private static async Task<IResult> SetDeviceChannelAsync(string deviceId, HttpContext ctx, IRequiredActor<DeviceShardRegion> region, NodeSettings settings,
        TimeProvider clock)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (!DeviceIdRules.IsValid(deviceId)) return Invalid("invalid_device_id", $"Device id '{deviceId}' must match {DeviceIdRules.Pattern}.");
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceChannelRequest>(ctx.Request, 16 * 1024, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (ChannelRules.Problem("channel", body!.Channel) is { } bad) return Invalid("invalid_channel", bad);
        var state = await region.ActorRef.Ask<object>(new GetDeviceState(deviceId), settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        if (state is not DeviceState s || s.Product is null)
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "device_not_found",
                $"Device '{deviceId}' has no product yet: register it first (orch device provision {deviceId} --product NAME), then set its channel.");
        // Membership is the channel tag: re-registering with the tags changed moves the device, the registry and selectors with it.
        var answer = await region.ActorRef.Ask<object>(new RegisterDevice(deviceId, s.Product, ChannelRules.WithChannel(s.Tags, body.Channel!), clock.GetUtcNow()),
            settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        if (answer is DeviceCommandRejected no) return HttpProblems.Problem(StatusCodes.Status409Conflict, no.Code, no.Message);
        var after = await region.ActorRef.Ask<object>(new GetDeviceState(deviceId), settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
        return AdminResults.Ok((DeviceState)after);
    }
}
