using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Hosting;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Admin;

/// <summary>Request body of credential provisioning.</summary>
/// <param name="Rotate">Replace an existing credential (the old secret stops working).</param>
public sealed record ProvisionRequest(bool Rotate);

/// <summary>Answer of provisioning: the only time the secret is ever shown.</summary>
public sealed record ProvisionResponse(string DeviceId, string Secret, DateTimeOffset CreatedUtc);

/// <summary>Answer of a credential query (no secret).</summary>
public sealed record CredentialResponse(string DeviceId, DateTimeOffset CreatedUtc);

/// <summary>Request of a chunk garbage collection (defaults: dry run, one hour of grace).</summary>
/// <param name="DryRun">Only report what would be deleted.</param>
/// <param name="GraceMinutes">Chunks stored more recently than this are kept (they may belong to a publish in flight).</param>
public sealed record ChunkGcRequest(bool DryRun = true, int GraceMinutes = 60);

/// <summary>Outcome of a chunk garbage collection.</summary>
/// <param name="Backend">Blob backend collected (filesystem or postgresql).</param>
/// <param name="Manifests">Published manifests whose references were counted.</param>
/// <param name="ReferencedChunks">Distinct chunks those manifests reference.</param>
/// <param name="Examined">Chunks in the backend older than the grace period.</param>
/// <param name="Kept">Examined chunks kept because they are referenced.</param>
/// <param name="Deleted">Chunks deleted (or that would be, in a dry run).</param>
/// <param name="DryRun">True when nothing was deleted.</param>
public sealed record ChunkGcResponse(string Backend, int Manifests, int ReferencedChunks, long Examined, long Kept, long Deleted, bool DryRun);

/// <summary>Admin API v1 (bearer token with scopes read/operate): device credentials, chunk gc, and the query routes of the other Admin/*Endpoints files.</summary>
public static class AdminEndpoints
{
    /// <summary>Maps <c>/admin/v1/...</c>.</summary>
    public static void MapAdminApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapPost("/devices/{deviceId}/credential", ProvisionAsync);
        g.MapGet("/devices/{deviceId}/credential", GetAsync);
        g.MapDelete("/devices/{deviceId}/credential", RevokeAsync);
        g.MapDeviceBatchProvisioning();
        g.MapPost("/chunks/gc", CollectGarbageAsync);
        // Content-addressed and invisible until an audited commit names it: one audit row per object would bury that one.
        g.MapPut("/chunks/{chunkId}", PutChunkAsync).WithMetadata(new Audit.NotAudited());
        app.MapClusterAdmin();
        app.MapDeviceAdmin();
        app.MapReleaseAdmin();
        app.MapReleaseUploadAdmin();
        app.MapPaletteAdmin();
        app.MapRolloutAdminApi();
        app.MapTokenAdmin();
        app.MapChannelAdminApi();
        app.MapAuditAdminApi();
        app.MapGroupAdminApi();
    }

    /// <summary>Largest chunk object accepted by the upload route (the store format caps plaintext at 16 MiB).</summary>
    public const int MaxChunkUploadBytes = 17 * 1024 * 1024;

    // Upload into the sharded chunk store (the way in for backends without a shared folder, e.g. PostgreSQL).
    private static async Task<IResult> PutChunkAsync(string chunkId, HttpContext ctx, ChunkClient chunks)
    {
        if (Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (!Orchestrator.ChunkStore.Codec.ChunkId.IsValid(chunkId))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_chunk_id", "Chunk id must be 64 lower-case hex characters (SHA-256 of the bytes).");
        if (ctx.Request.ContentLength is null or > MaxChunkUploadBytes)
            return HttpProblems.Problem(StatusCodes.Status413PayloadTooLarge, "body_too_large", $"Send the chunk with a Content-Length of at most {MaxChunkUploadBytes} bytes.");
        // This route alone may exceed the device body limit.
        if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = MaxChunkUploadBytes;
        var data = new byte[ctx.Request.ContentLength.Value];
        await ctx.Request.Body.ReadExactlyAsync(data, ctx.RequestAborted).ConfigureAwait(false);
        var answer = await chunks.PutAsync(chunkId, data, ctx.RequestAborted).ConfigureAwait(false);
        return answer switch
        {
            Orchestrator.Messages.Chunks.ChunkStored { AlreadyPresent: true } => TypedResults.Ok(),
            Orchestrator.Messages.Chunks.ChunkStored => TypedResults.StatusCode(StatusCodes.Status201Created),
            Orchestrator.Messages.Chunks.ChunkRejected r => HttpProblems.Problem(StatusCodes.Status400BadRequest, "chunk_id_mismatch", r.Reason),
            Orchestrator.Messages.Chunks.ChunkStoreFailed f => HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "chunk_store_failed", f.Reason),
            _ => throw new InvalidOperationException($"Chunk store answered {answer.GetType().Name}."),
        };
    }

    private static async Task<IResult> CollectGarbageAsync(HttpContext ctx, FileSystemStore store, TimeProvider clock)
    {
        if (Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        var blobs = ctx.RequestServices.GetService<IChunkBlobStore>();
        if (blobs is null)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "no_chunk_store", "This node has no chunks role; call a node that has it.");
        var request = new ChunkGcRequest(true, 60);
        if (ctx.Request.ContentLength is > 0 || (ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0))
        {
            var (body, error) = await HttpProblems.ReadJsonAsync<ChunkGcRequest>(ctx.Request, 4096, ctx.RequestAborted).ConfigureAwait(false);
            if (error is not null) return error;
            request = body!;
        }
        if (request.GraceMinutes < 1)
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_grace", "graceMinutes must be >= 1 so chunks of a publish in flight are never deleted.");
        ChunkReferenceCounts references;
        try { references = ChunkReferenceCounts.FromStore(store); }
        catch (Exception ex) when (ex is InvalidOperationException or Orchestrator.ChunkStore.Validation.InvalidInputException)
        {
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "store_unreadable", $"Nothing was deleted: {ex.Message}");
        }
        var report = await BlobGarbageCollector.CollectAsync(blobs, references, TimeSpan.FromMinutes(request.GraceMinutes),
            clock.GetUtcNow(), request.DryRun, ctx.RequestAborted).ConfigureAwait(false);
        return TypedResults.Json(new ChunkGcResponse(blobs.Name, references.Manifests, references.Chunks, report.Examined, report.Referenced, report.Deleted, report.DryRun), HttpProblems.Json);
    }

    /// <summary>Checks the bearer token for <paramref name="scope"/>; null when allowed.</summary>
    public static IResult? Authorize(HttpContext ctx, string scope)
    {
        var tokens = ctx.RequestServices.GetRequiredService<AdminTokens>();
        var header = ctx.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer realm=\"orchestrator-admin\"";
            return HttpProblems.Problem(StatusCodes.Status401Unauthorized, "token_missing", "Send Authorization: Bearer <admin token>.");
        }
        var check = tokens.Check(header[7..].Trim(), ctx.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow());
        if (check.Scopes is not { } scopes)
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer realm=\"orchestrator-admin\", error=\"invalid_token\"";
            return HttpProblems.Problem(StatusCodes.Status401Unauthorized, check.Error!, check.Message!);
        }
        // A valid token is an identity: changing requests are audited under its name, refused ones (403) too.
        ctx.Items[Audit.AuditMiddleware.TokenItem] = check.Name;
        return scopes.Contains(scope)
            ? null
            : HttpProblems.Problem(StatusCodes.Status403Forbidden, "scope_missing", $"This token lacks the '{scope}' scope.");
    }

    private static IResult? InvalidId(string deviceId) => DeviceCredentialStore.IsValidDeviceId(deviceId)
        ? null
        : HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_device_id",
            $"Device id '{deviceId}' is invalid: it must match {Orchestrator.Messages.Devices.DeviceIdRules.Pattern} (1-128 characters of letters, digits, '.', '_', ':', '-', starting with a letter or digit).");

    private static async Task<IResult> ProvisionAsync(string deviceId, HttpContext ctx, DeviceCredentialStore store,
        IRequiredActor<DeviceShardRegion> devices, NodeSettings settings, TimeProvider clock, ILogger<DeviceCredentialStore> log)
    {
        if (Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var rotate = false;
        if (ctx.Request.ContentLength is > 0 || (ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0))
        {
            var (body, error) = await HttpProblems.ReadJsonAsync<ProvisionRequest>(ctx.Request, 4096, ctx.RequestAborted).ConfigureAwait(false);
            if (error is not null) return error;
            rotate = body!.Rotate;
        }
        var created = await store.ProvisionAsync(deviceId, rotate, ctx.RequestAborted).ConfigureAwait(false);
        if (created is null)
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "credential_exists",
                $"Device '{deviceId}' already has a credential; send {{\"rotate\": true}} to replace it (the old secret stops working).");
        if (rotate)
        {
            // A re-provisioned device signs with its clock, possibly below the sequence its old installation reached; the
            // old secret no longer authenticates, so starting over lets nothing old be replayed. The secret is already
            // issued, so a failure here is logged, not answered: the device then waits until its clock passes the old mark.
            try
            {
                await devices.ActorRef.Ask<IOrchestratorMessage>(new ResetRequestSequence(deviceId, "credential rotated", clock.GetUtcNow()),
                    settings.Gateway.DeviceAskTimeout, ctx.RequestAborted).ConfigureAwait(false);
                // The fast path's own replay mark too; other gateways clear theirs when their registry folds the reset.
                ctx.RequestServices.GetService<Orchestrator.DeviceActors.Registry.DeviceRowTable>()?.ResetFastSequence(deviceId);
            }
            catch (Exception e) when (e is Akka.Actor.AskTimeoutException or TaskCanceledException)
            {
                log.LogWarning("Credential of {Device} rotated, but its request sequence was not reset ({Error})", deviceId, e.Message);
            }
        }
        return TypedResults.Json(new ProvisionResponse(created.DeviceId, created.Secret, created.CreatedUtc), HttpProblems.Json, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> GetAsync(string deviceId, HttpContext ctx, DeviceCredentialStore store)
    {
        if (Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        var info = await store.GetAsync(deviceId, ctx.RequestAborted).ConfigureAwait(false);
        return info is null
            ? HttpProblems.Problem(StatusCodes.Status404NotFound, "credential_not_found", $"Device '{deviceId}' has no credential; provision one with orch device provision {deviceId}.")
            : TypedResults.Json(new CredentialResponse(info.DeviceId, info.CreatedUtc), HttpProblems.Json);
    }

    private static async Task<IResult> RevokeAsync(string deviceId, HttpContext ctx, DeviceCredentialStore store)
    {
        if (Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (InvalidId(deviceId) is { } bad) return bad;
        return await store.RevokeAsync(deviceId, ctx.RequestAborted).ConfigureAwait(false)
            ? TypedResults.NoContent()
            : HttpProblems.Problem(StatusCodes.Status404NotFound, "credential_not_found", $"Device '{deviceId}' has no credential.");
    }
}
