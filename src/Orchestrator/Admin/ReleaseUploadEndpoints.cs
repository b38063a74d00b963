using Microsoft.AspNetCore.Http.Features;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Releases;

namespace Orchestrator.Node.Admin;

/// <summary>
/// Admin routes of <c>orch release publish --server</c>: the upload plan and the commit that makes the release visible
/// (<see cref="ReleaseIntake"/> holds the rules); the chunk objects in between go to <c>PUT /admin/v1/chunks/{chunkId}</c>.
/// Operate scope; served by nodes with the chunks role (they read the chunk backend directly).
/// </summary>
public static class ReleaseUploadEndpoints
{
    /// <summary>Largest upload or commit body: a base64 manifest of a very large release plus its root documents.</summary>
    public const long MaxReleaseBodyBytes = 96L * 1024 * 1024;

    /// <summary>Maps <c>POST /admin/v1/releases/{product}/{version}/upload|commit</c>.</summary>
    public static void MapReleaseUploadAdmin(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapPost("/releases/{product}/{version}/upload", PlanAsync);
        g.MapPost("/releases/{product}/{version}/commit", CommitAsync);
    }

    private static ReleaseIntake? Intake(HttpContext ctx) =>
        ctx.RequestServices.GetService<IChunkBlobStore>() is { } chunks
            ? new ReleaseIntake(ctx.RequestServices.GetRequiredService<FileSystemStore>(), chunks)
            : null;

    private static IResult NoChunksRole() => HttpProblems.Problem(StatusCodes.Status409Conflict, "chunks_role_missing",
        "This node has no 'chunks' role, so it holds no chunk store to upload into; send the release to a node with that role (Node:Roles).");

    private static Task<IResult> PlanAsync(HttpContext ctx, string product, string version) =>
        RunAsync(ctx, product, version, async (intake, body) => AdminResults.Ok(await intake.PlanAsync(product, version, body, ctx.RequestAborted).ConfigureAwait(false)));

    private static Task<IResult> CommitAsync(HttpContext ctx, string product, string version) =>
        RunAsync(ctx, product, version, async (intake, body) => AdminResults.Ok(await intake.CommitAsync(product, version, body, ctx.RequestAborted).ConfigureAwait(false)));

    private static async Task<IResult> RunAsync(HttpContext ctx, string product, string version, Func<ReleaseIntake, ReleaseUploadRequest, Task<IResult>> run)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Operate) is { } denied) return denied;
        if (Intake(ctx) is not { } intake) return NoChunksRole();
        RaiseBodyLimit(ctx, MaxReleaseBodyBytes);
        var (body, error) = await HttpProblems.ReadJsonAsync<ReleaseUploadRequest>(ctx.Request, MaxReleaseBodyBytes, ctx.RequestAborted).ConfigureAwait(false);
        if (error is not null) return error;
        try
        {
            return await run(intake, body!).ConfigureAwait(false);
        }
        catch (InvalidInputException e)
        {
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_release", e.Message);
        }
        catch (IntegrityException e)
        {
            return HttpProblems.Problem(StatusCodes.Status422UnprocessableEntity, "release_not_trusted", e.Message);
        }
        catch (ReleaseConflictException e)
        {
            return HttpProblems.Problem(StatusCodes.Status409Conflict, e.Code, e.Message);
        }
        catch (StoreBusyException e)
        {
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "store_locked", e.Message);
        }
    }

    private static void RaiseBodyLimit(HttpContext ctx, long bytes)
    {
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = bytes;
    }
}
