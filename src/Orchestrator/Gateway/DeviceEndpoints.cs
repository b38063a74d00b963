using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Gateway;

/// <summary>Device API v1: check-in and reports (docs/protocol.md).</summary>
public static class DeviceEndpoints
{
    /// <summary>Maps <c>/v1/devices/{deviceId}/...</c>.</summary>
    public static void MapDeviceApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/v1/devices/{deviceId}");
        // The device routes take their services (all singletons) from the root provider: a request that touches
        // HttpContext.RequestServices gets a DI scope of its own, which the idle check-in, the node's most frequent
        // request, has no use for.
        var services = new DeviceRouteServices(app.ServiceProvider);
        var admission = app.ServiceProvider.GetRequiredService<CheckInAdmission>();
        GatewayMetrics.ObserveAdmission(admission);
        // A handler of the HttpContext alone, without an endpoint filter: the admission is this route's door
        // (CheckInAdmission.AnswerAsync). Mapped as a Delegate, not a RequestDelegate, so the route keeps its handler
        // metadata and stays in the OpenAPI document.
        g.MapPost("/check-in", (Func<HttpContext, Task>)(ctx => admission.AnswerAsync(ctx, ctx.Request.RouteValues["deviceId"] as string, services, CheckInAsync)));
        g.MapPost("/progress", (string deviceId, HttpContext ctx) =>
            ReportAsync<ProgressReport>(deviceId, ctx, services, "progress", DeviceRequestValidation.Validate, (gw, r, ct) => gw.ReportProgressAsync(deviceId, r, ct, Sequence(ctx))));
        g.MapPost("/failure", (string deviceId, HttpContext ctx) =>
            ReportAsync<FailureReport>(deviceId, ctx, services, "failure", DeviceRequestValidation.Validate, async (gw, r, ct) =>
            {
                // The device actor's backoff (persisted attempt count, capped, jittered) travels as Retry-After.
                if (await gw.ReportFailureAsync(deviceId, r, ct, Sequence(ctx)).ConfigureAwait(false) is { } retry)
                    ctx.Response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }));
        g.MapPost("/completion", (string deviceId, HttpContext ctx) =>
            ReportAsync<CompletionReport>(deviceId, ctx, services, "completion", DeviceRequestValidation.Validate, (gw, r, ct) =>
            {
                GatewayMetrics.InstallBytes.Add(r.BytesDownloaded ?? 0, new KeyValuePair<string, object?>("method", r.Method ?? "unknown"));
                return gw.ReportCompletionAsync(deviceId, r, ct, Sequence(ctx));
            }));
        // The path's device id must be the credential's (AuthorizeDeviceAsync), so a device can only mark itself.
        g.MapPost("/updater-lost", (string deviceId, HttpContext ctx) =>
            ReportAsync<UpdaterLostReport>(deviceId, ctx, services, "updater-lost", DeviceRequestValidation.Validate, (gw, r, ct) =>
                gw.ReportUpdaterLostAsync(deviceId, r, ct, Sequence(ctx))));
    }

    /// <summary>Authenticates and checks that the credential belongs to <paramref name="deviceId"/>; null when allowed.</summary>
    internal static ValueTask<IResult?> AuthorizeDeviceAsync(HttpContext ctx, string? deviceId) =>
        AuthorizeDeviceAsync(ctx, deviceId, ctx.RequestServices.GetRequiredService<DeviceAuthentication>());

    /// <summary>
    /// Authenticates with <paramref name="auth"/> and checks that the credential belongs to <paramref name="deviceId"/>
    /// (any device when null); null when allowed, and the request then carries its <see cref="AuthenticatedDevice"/>.
    /// </summary>
    internal static async ValueTask<IResult?> AuthorizeDeviceAsync(HttpContext ctx, string? deviceId, DeviceAuthentication auth)
    {
        var result = await auth.AuthenticateAsync(ctx.Request, ctx.RequestAborted).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            GatewayMetrics.AuthFailures.Add(1, new KeyValuePair<string, object?>("error", result.Error));
            if (result.Status == StatusCodes.Status401Unauthorized) ctx.Response.Headers.WWWAuthenticate = WwwAuthenticate;
            return HttpProblems.Problem(result.Status, result.Error!, result.Message!);
        }
        if (deviceId is not null && !string.Equals(result.DeviceId, deviceId, StringComparison.Ordinal))
        {
            GatewayMetrics.AuthFailures.Add(1, new KeyValuePair<string, object?>("error", "credential_wrong_device"));
            return HttpProblems.Problem(StatusCodes.Status403Forbidden, "credential_wrong_device",
                "The credential belongs to another device; a device may only act as itself.");
        }
        ctx.Features.Set(new AuthenticatedDevice(result.DeviceId!, result.Sequence));
        return null;
    }

    /// <summary>The challenge of a 401 on the device and store routes.</summary>
    internal const string WwwAuthenticate = $"{Orchestrator.Messages.Protocol.DeviceRequestSignature.Scheme} realm=\"orchestrator-devices\"";

    private static long Sequence(HttpContext ctx) => ctx.Features.Get<AuthenticatedDevice>()?.Sequence ?? 0;

    private static async ValueTask<IResult> CheckInAsync(string? deviceId, HttpContext ctx, DeviceRouteServices services)
    {
        if (deviceId is null) return HttpProblems.Problem(StatusCodes.Status404NotFound, "not_found", "The check-in route names no device.");
        if (await AuthorizeDeviceAsync(ctx, deviceId, services.Authentication).ConfigureAwait(false) is { } denied) return denied;
        var settings = services.Settings;
        // Authentication read and verified the body; it is parsed from those bytes, with the protocol's generated metadata.
        var (request, error) = ctx.Features.Get<AuthenticatedBody>() is { } body
            ? HttpProblems.ParseJson(ctx.Request, body.Bytes, ProtocolJsonContext.Default.CheckInRequest)
            : await HttpProblems.ReadJsonAsync<CheckInRequest>(ctx.Request, settings.Gateway.MaxRequestBodyBytes, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (DeviceRequestValidation.Validate(request!, settings.Gateway.MaxInventoryFiles) is { } invalid)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, invalid.Code, invalid.Message);
        // Not through ForwardAsync: the idle check-in is the node's most frequent request, and a closure, its delegate and
        // two more async frames per check-in are work the answer does not need. The same refusals (Problem).
        var gw = services.Gateway;
        if (gw is null) return NoGateway();
        try
        {
            var answer = await gw.CheckInAsync(deviceId, request!, ctx.RequestAborted, Sequence(ctx)).ConfigureAwait(false);
            var response = answer.Response;
            // The device gateway takes the grant from the device's budget; a gateway that did not gets the plain device grant here.
            if (response.Action != UpdateAction.None && response.Grant is null)
            {
                try
                {
                    answer = answer with { Response = response with { Grant = await services.Throttle.OpenAsync(deviceId, null, 0, ctx.RequestAborted).ConfigureAwait(false) } };
                }
                catch (BudgetUnavailableException ex)
                {
                    throw new DeviceRequestRejectedException(503, "budgets_unavailable", ex.Message) { RetryAfter = TimeSpan.FromSeconds(5) };
                }
            }
            GatewayMetrics.CheckInAnswered(response.Action);
            return new CheckInAnswerResult(answer);
        }
        catch (Exception ex) when (ex is DeviceRequestRejectedException or Akka.Actor.AskTimeoutException)
        {
            return Problem(ctx, ex);
        }
    }

    private static async Task<IResult> ReportAsync<T>(string deviceId, HttpContext ctx, DeviceRouteServices services, string kind,
        Func<T, (string Code, string Message)?> validate, Func<IDeviceGateway, T, CancellationToken, Task> forward) where T : class
    {
        if (await AuthorizeDeviceAsync(ctx, deviceId, services.Authentication).ConfigureAwait(false) is { } denied) return denied;
        var (report, error) = await HttpProblems.ReadJsonAsync<T>(ctx.Request, services.Settings.Gateway.MaxRequestBodyBytes, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (validate(report!) is { } invalid) return HttpProblems.Problem(StatusCodes.Status400BadRequest, invalid.Code, invalid.Message);
        return await ForwardAsync(ctx, services.Gateway, async gw =>
        {
            await forward(gw, report!, ctx.RequestAborted).ConfigureAwait(false);
            GatewayMetrics.Reports.Add(1, new KeyValuePair<string, object?>("kind", kind));
            return TypedResults.NoContent();
        }).ConfigureAwait(false);
    }

    private static async Task<IResult> ForwardAsync(HttpContext ctx, IDeviceGateway? gw, Func<IDeviceGateway, Task<IResult>> call)
    {
        if (gw is null) return NoGateway();
        try
        {
            return await call(gw).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DeviceRequestRejectedException or Akka.Actor.AskTimeoutException)
        {
            return Problem(ctx, ex);
        }
    }

    private static IResult NoGateway() =>
        HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "devices_unavailable", "This node has no device gateway configured.");

    // The answer to a device request the gateway refused (DeviceRequestRejectedException) or its actor did not answer in time.
    private static IResult Problem(HttpContext ctx, Exception refusal)
    {
        if (refusal is not DeviceRequestRejectedException ex)
        {
            ctx.Response.Headers.RetryAfter = "5";
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "devices_timeout", "The device actor did not answer in time; retry after the Retry-After delay.");
        }
        if (ex.StatusCode == StatusCodes.Status401Unauthorized)
        {
            GatewayMetrics.AuthFailures.Add(1, new KeyValuePair<string, object?>("error", ex.Error));
            ctx.Response.Headers.WWWAuthenticate = WwwAuthenticate;
        }
        if (ex.RetryAfter is { } ra)
        {
            ctx.Response.Headers.RetryAfter = ((long)Math.Max(1, Math.Ceiling(ra.TotalSeconds))).ToString(System.Globalization.CultureInfo.InvariantCulture);
            ctx.Response.Headers.CacheControl = "no-store";
        }
        else if (ex.StatusCode == StatusCodes.Status503ServiceUnavailable) ctx.Response.Headers.RetryAfter = "5";
        return HttpProblems.Problem(ex.StatusCode, ex.Error, ex.Message);
    }
}

/// <summary>
/// What authentication proved about a device request (<see cref="DeviceEndpoints.AuthorizeDeviceAsync(HttpContext, string?, DeviceAuthentication)"/>):
/// left on the request's features for the endpoint, its filter and the store routes.
/// </summary>
/// <param name="DeviceId">The device whose credential signed the request.</param>
/// <param name="Sequence">The request's signed sequence number.</param>
internal sealed record AuthenticatedDevice(string DeviceId, long Sequence);

/// <summary>
/// The device routes' services, resolved from the root provider once each (every one is a singleton): the same
/// instances <c>HttpContext.RequestServices</c> would give, without a DI scope per request.
/// </summary>
internal sealed class DeviceRouteServices(IServiceProvider root)
{
    private DeviceAuthentication? _authentication;
    private NodeSettings? _settings;
    private DownloadThrottle? _throttle;
    private IDeviceGateway? _gateway;
    private bool _gatewayResolved;

    /// <summary>Device request authentication.</summary>
    public DeviceAuthentication Authentication => _authentication ??= root.GetRequiredService<DeviceAuthentication>();

    /// <summary>The node's settings.</summary>
    public NodeSettings Settings => _settings ??= root.GetRequiredService<NodeSettings>();

    /// <summary>The download budgets.</summary>
    public DownloadThrottle Throttle => _throttle ??= root.GetRequiredService<DownloadThrottle>();

    /// <summary>The device gateway, or null on a node without one.</summary>
    public IDeviceGateway? Gateway
    {
        get
        {
            // Resolved on first use, not at mapping: the gateway's dependencies (the director's key, the shard region)
            // belong to the started host.
            if (!Volatile.Read(ref _gatewayResolved))
            {
                _gateway = root.GetService<IDeviceGateway>();
                Volatile.Write(ref _gatewayResolved, true);
            }
            return _gateway;
        }
    }
}
