using System.Buffers;
using System.Text.Json;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Admin;

/// <summary>
/// <c>POST /admin/v1/devices/provision-batch</c>: fresh credentials for many devices in one request (one request per
/// device took minutes for a fleet). Everything is checked before anything is written — the ids (generated or listed),
/// duplicates, the bound, and that no device has a credential yet — so a refused request creates nothing. The
/// credentials are then written <see cref="DeviceCredentialStore.BatchSize"/> per transaction and each committed batch is
/// streamed back at once as NDJSON (<see cref="DeviceProvisionLine"/>): the secrets exist nowhere else, and the node
/// never holds more than one batch of them.
/// </summary>
public static class DeviceBatchProvisioningEndpoint
{
    /// <summary>Maps the route.</summary>
    /// <param name="g">The <c>/admin/v1</c> group.</param>
    public static void MapDeviceBatchProvisioning(this RouteGroupBuilder g) => g.MapPost("/devices/provision-batch", ProvisionBatchAsync);

    private static readonly JsonSerializerOptions LineJson = new(HttpProblems.Json)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault,
    };

    private static async Task<IResult> ProvisionBatchAsync(HttpContext ctx, DeviceCredentialStore store, ILogger<DeviceCredentialStore> log)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        // This route alone may exceed the device body limit: a fleet's id list is larger than any device request.
        if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = DeviceBatchProvisionRequest.MaxBodyBytes;
        var (body, error) = await HttpProblems.ReadJsonAsync<DeviceBatchProvisionRequest>(ctx.Request, DeviceBatchProvisionRequest.MaxBodyBytes, ctx.RequestAborted)
            .ConfigureAwait(false);
        if (error is not null) return error;
        var (ids, problem) = Resolve(body!);
        if (problem is not null)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_provisioning", $"Batch provisioning refused: {problem} Nothing was created.");
        var existing = await store.ExistingAsync(ids!, ctx.RequestAborted).ConfigureAwait(false);
        if (existing.Count > 0)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "credential_exists",
                $"Batch provisioning refused: {existing.Count} of the {ids!.Count} devices already have a credential ({string.Join(", ", existing.Take(5))}" +
                $"{(existing.Count > 5 ? ", ..." : "")}); leave them out, or rotate one with orch device provision DEVICE --rotate. Nothing was created.");

        ctx.Response.StatusCode = StatusCodes.Status200OK;
        ctx.Response.ContentType = DeviceBatchProvisionRequest.StreamMediaType;
        ctx.Response.Headers.CacheControl = "no-store";
        var output = ctx.Response.Body;
        var written = 0;
        try
        {
            await foreach (var batch in store.ProvisionBatchAsync(ids!, ctx.RequestAborted).ConfigureAwait(false))
            {
                var lines = new System.Buffers.ArrayBufferWriter<byte>(batch.Count * 128);
                foreach (var c in batch) Append(lines, new DeviceProvisionLine(c.DeviceId, c.Secret));
                await output.WriteAsync(lines.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
                written += batch.Count;
                await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            }
        }
        catch (System.Data.Common.DbException ex)
        {
            log.LogWarning(ex, "Batch provisioning stopped after {Written} of {Total} devices", written, ids!.Count);
            await WriteLineAsync(output, new DeviceProvisionLine(Error: "provisioning_incomplete",
                Message: $"{written} of {ids.Count} devices were provisioned (their credentials are above); the next batch was not written ({ex.Message}). " +
                         "Send the remaining devices again (a device given a credential meanwhile by another request is refused as credential_exists)."),
                CancellationToken.None).ConfigureAwait(false);
            return Results.Empty;
        }
        await WriteLineAsync(output, new DeviceProvisionLine(Done: true, Devices: written), ctx.RequestAborted).ConfigureAwait(false);
        return Results.Empty;
    }

    private static async Task WriteLineAsync(Stream output, DeviceProvisionLine line, CancellationToken ct)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        Append(buffer, line);
        await output.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await output.FlushAsync(ct).ConfigureAwait(false);
    }

    private static void Append(System.Buffers.ArrayBufferWriter<byte> buffer, DeviceProvisionLine line)
    {
        using (var writer = new Utf8JsonWriter(buffer)) JsonSerializer.Serialize(writer, line, LineJson);
        buffer.Write("\n"u8);
    }

    /// <summary>The ids the request names, or what is wrong with it (naming the first bad input).</summary>
    internal static (IReadOnlyList<string>? Ids, string? Problem) Resolve(DeviceBatchProvisionRequest body)
    {
        var max = DeviceBatchProvisionRequest.MaxDevices;
        if (body.DeviceIds is not null && body.Prefix is not null)
            return (null, "give either \"deviceIds\" or \"prefix\" with \"count\", not both.");
        if (body.DeviceIds is { } list)
        {
            if (list.Count == 0) return (null, "\"deviceIds\" is empty; list at least one device id.");
            if (list.Count > max) return (null, $"{list.Count} devices in one request; the limit is {max}: split the list.");
            var seen = new Dictionary<string, int>(list.Count, StringComparer.Ordinal);
            for (var i = 0; i < list.Count; i++)
            {
                if (!DeviceIdRules.IsValid(list[i]))
                    return (null, $"deviceIds[{i}] '{list[i]}' is not a valid device id: it must match {DeviceIdRules.Pattern}.");
                if (!seen.TryAdd(list[i], i))
                    return (null, $"deviceIds[{i}] repeats '{list[i]}' of deviceIds[{seen[list[i]]}]: list each device once.");
            }
            return (list, null);
        }
        if (body.Prefix is null)
            return (null, "the body needs \"prefix\" and \"count\" (ids prefix + number) or a \"deviceIds\" list.");
        if (body.Count < 1 || body.Count > max)
            return (null, $"count {body.Count} is out of range; provision 1..{max} devices per request.");
        if (body.Start < 0 || body.Start > long.MaxValue / 2)
            return (null, $"start {body.Start} is out of range; numbers start at 0 or more (default 1).");
        // Ids differ only in their numbers, so the longest (the last) decides whether all fit the rule.
        foreach (var probe in new[] { body.GeneratedId(0), body.GeneratedId(body.Count - 1) })
            if (!DeviceIdRules.IsValid(probe))
                return (null, $"prefix '{body.Prefix}' gives the id '{probe}', which is not a valid device id: it must match {DeviceIdRules.Pattern} " +
                              "(start with a letter or digit; letters, digits, '.', '_', ':', '-'; at most 128 characters with the number).");
        var ids = new string[body.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = body.GeneratedId(i);
        return (ids, null);
    }
}
