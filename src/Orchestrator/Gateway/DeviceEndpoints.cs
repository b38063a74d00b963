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
        g.MapPost("/check-in", CheckInAsync).AddEndpointFilter(app.ServiceProvider.GetRequiredService<CheckInAdmission>());
        g.MapPost("/progress", (string deviceId, HttpContext ctx) =>
            ReportAsync<ProgressReport>(deviceId, ctx, "progress", DeviceRequestValidation.Validate, (gw, r, ct) => gw.ReportProgressAsync(deviceId, r, ct, Sequence(ctx))));
        g.MapPost("/failure", (string deviceId, HttpContext ctx) =>
            ReportAsync<FailureReport>(deviceId, ctx, "failure", DeviceRequestValidation.Validate, async (gw, r, ct) =>
            {
                // The device actor's backoff (persisted attempt count, capped, jittered) travels as Retry-After.
                if (await gw.ReportFailureAsync(deviceId, r, ct, Sequence(ctx)).ConfigureAwait(false) is { } retry)
                    ctx.Response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }));
        g.MapPost("/completion", (string deviceId, HttpContext ctx) =>
            ReportAsync<CompletionReport>(deviceId, ctx, "completion", DeviceRequestValidation.Validate, (gw, r, ct) =>
            {
                GatewayMetrics.InstallBytes.Add(r.BytesDownloaded ?? 0, new KeyValuePair<string, object?>("method", r.Method ?? "unknown"));
                return gw.ReportCompletionAsync(deviceId, r, ct, Sequence(ctx));
            }));
        // The path's device id must be the credential's (AuthorizeDeviceAsync), so a device can only mark itself.
        g.MapPost("/updater-lost", (string deviceId, HttpContext ctx) =>
            ReportAsync<UpdaterLostReport>(deviceId, ctx, "updater-lost", DeviceRequestValidation.Validate, (gw, r, ct) =>
                gw.ReportUpdaterLostAsync(deviceId, r, ct, Sequence(ctx))));
    }

    /// <summary>Authenticates and checks that the credential belongs to <paramref name="deviceId"/>; null when allowed.</summary>
    internal static async ValueTask<IResult?> AuthorizeDeviceAsync(HttpContext ctx, string? deviceId)
    {
        var auth = ctx.RequestServices.GetRequiredService<DeviceAuthentication>();
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
        ctx.Items[DeviceIdItem] = result.DeviceId;
        ctx.Items[SequenceItem] = result.Sequence;
        return null;
    }

    /// <summary>Key of the authenticated device id in HttpContext.Items.</summary>
    internal const string DeviceIdItem = "orch.deviceId";

    /// <summary>Key of the authenticated request sequence number in HttpContext.Items.</summary>
    internal const string SequenceItem = "orch.requestSequence";

    /// <summary>The challenge of a 401 on the device and store routes.</summary>
    internal const string WwwAuthenticate = $"{Orchestrator.Messages.Protocol.DeviceRequestSignature.Scheme} realm=\"orchestrator-devices\"";

    private static long Sequence(HttpContext ctx) => ctx.Items[SequenceItem] is long s ? s : 0;

    private static async Task<IResult> CheckInAsync(string deviceId, HttpContext ctx, NodeSettings settings, DownloadThrottle throttle)
    {
        if (await AuthorizeDeviceAsync(ctx, deviceId).ConfigureAwait(false) is { } denied) return denied;
        // Authentication read and verified the body; it is parsed from those bytes, with the protocol's generated metadata.
        var (request, error) = ctx.Features.Get<AuthenticatedBody>() is { } body
            ? HttpProblems.ParseJson(ctx.Request, body.Bytes, ProtocolJsonContext.Default.CheckInRequest)
            : await HttpProblems.ReadJsonAsync<CheckInRequest>(ctx.Request, settings.Gateway.MaxRequestBodyBytes, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (DeviceRequestValidation.Validate(request!, settings.Gateway.MaxInventoryFiles) is { } invalid)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, invalid.Code, invalid.Message);
        // Not through ForwardAsync: the idle check-in is the node's most frequent request, and a closure, its delegate and
        // two more async frames per check-in are work the answer does not need. The same refusals (Problem).
        var gw = ctx.RequestServices.GetService<IDeviceGateway>();
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
                    answer = answer with { Response = response with { Grant = await throttle.OpenAsync(deviceId, null, 0, ctx.RequestAborted).ConfigureAwait(false) } };
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

    private static async Task<IResult> ReportAsync<T>(string deviceId, HttpContext ctx, string kind,
        Func<T, (string Code, string Message)?> validate, Func<IDeviceGateway, T, CancellationToken, Task> forward) where T : class
    {
        if (await AuthorizeDeviceAsync(ctx, deviceId).ConfigureAwait(false) is { } denied) return denied;
        var settings = ctx.RequestServices.GetRequiredService<NodeSettings>();
        var (report, error) = await HttpProblems.ReadJsonAsync<T>(ctx.Request, settings.Gateway.MaxRequestBodyBytes, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        if (validate(report!) is { } invalid) return HttpProblems.Problem(StatusCodes.Status400BadRequest, invalid.Code, invalid.Message);
        return await ForwardAsync(ctx, async gw =>
        {
            await forward(gw, report!, ctx.RequestAborted).ConfigureAwait(false);
            GatewayMetrics.Reports.Add(1, new KeyValuePair<string, object?>("kind", kind));
            return TypedResults.NoContent();
        }).ConfigureAwait(false);
    }

    private static async Task<IResult> ForwardAsync(HttpContext ctx, Func<IDeviceGateway, Task<IResult>> call)
    {
        var gw = ctx.RequestServices.GetService<IDeviceGateway>();
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
