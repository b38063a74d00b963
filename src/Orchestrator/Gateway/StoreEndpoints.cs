using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.Net.Http.Headers;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Chunks;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// <c>/v1/store/...</c>: the static-store layout over HTTP for authenticated devices. Chunks come from the sharded
/// chunk store (ETag = chunk id, immutable, Range/resume, throttled), packs from the store folder (the same rules);
/// manifests and channels come from the store
/// folder (ETag = SHA-256 of the file, revalidated on each use).
/// </summary>
public static partial class StoreEndpoints
{
    /// <summary>Cache-Control of chunks: content addressed, so never stale.</summary>
    public const string ImmutableCacheControl = "public, max-age=31536000, immutable";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\z")]
    private static partial Regex FilePattern();

    /// <summary>Maps the store routes.</summary>
    public static void MapStoreApi(this IEndpointRouteBuilder app)
    {
        app.MapMethods("/v1/store/chunks/{prefix}/{chunkId}", [HttpMethods.Get, HttpMethods.Head], GetChunkAsync);
        app.MapMethods("/v1/store/packs/{prefix}/{packId}", [HttpMethods.Get, HttpMethods.Head], GetPackAsync);
        app.MapMethods("/v1/store/manifests/{product}/{file}", [HttpMethods.Get, HttpMethods.Head],
            (string product, string file, HttpContext ctx, FileSystemStore store) => GetStoreFileAsync(ctx, store, StoreLayout.ManifestsDirectory, product, file));
        app.MapMethods("/v1/store/channels/{product}/{file}", [HttpMethods.Get, HttpMethods.Head],
            (string product, string file, HttpContext ctx, FileSystemStore store) => GetStoreFileAsync(ctx, store, StoreLayout.ChannelsDirectory, product, file));
        app.MapMethods("/v1/store/deltas/{product}/{fromVersion}/{file}", [HttpMethods.Get, HttpMethods.Head], GetDeltaFileAsync);
        // Trust documents (docs/store-format.md "Trust documents"): signed, so served like manifests.
        app.MapMethods("/v1/store/floors/{product}/{file}", [HttpMethods.Get, HttpMethods.Head],
            (string product, string file, HttpContext ctx, FileSystemStore store) => GetStoreFileAsync(ctx, store, "floors", product, file));
        app.MapMethods("/v1/store/root/{file}", [HttpMethods.Get, HttpMethods.Head], GetRootFileAsync);
    }

    private static async Task<IResult> GetChunkAsync(string prefix, string chunkId, HttpContext ctx, ChunkClient chunks, DownloadThrottle throttle)
    {
        if (await DeviceEndpoints.AuthorizeDeviceAsync(ctx, deviceId: null).ConfigureAwait(false) is { } denied) return denied;
        if (!ChunkId.IsValid(chunkId) || !string.Equals(prefix, chunkId[..2], StringComparison.Ordinal))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_chunk_id",
                "Chunk path must be chunks/<first 2 hex of id>/<64 lower-case hex id>.");
        var etag = new EntityTagHeaderValue($"\"{chunkId}\"");
        var headers = ctx.Response.Headers;
        headers.CacheControl = ImmutableCacheControl;

        // Content-addressed: a matching If-None-Match needs no lookup and costs the device nothing. ("*" is left to
        // the general path: it means "if the chunk exists", which needs the lookup.)
        if (ctx.Request.Headers.IfNoneMatch.Count > 0
            && ctx.Request.GetTypedHeaders().IfNoneMatch.Any(t => !t.Equals(EntityTagHeaderValue.Any) && t.Compare(etag, useStrongComparison: false)))
        {
            headers.ETag = etag.ToString();
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        object answer;
        try
        {
            answer = await chunks.GetAsync(chunkId, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (Akka.Actor.AskTimeoutException)
        {
            headers.RetryAfter = "5";
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "chunk_store_timeout", "The chunk store did not answer in time; retry later.");
        }
        switch (answer)
        {
            case ChunkNotFound:
                headers.CacheControl = "no-store";
                return HttpProblems.Problem(StatusCodes.Status404NotFound, "chunk_not_found", $"No chunk {chunkId} in the store.");
            case ChunkStoreFailed f:
                headers.CacheControl = "no-store";
                headers.RetryAfter = "5";
                return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "chunk_store_failed", $"The chunk store failed to read {chunkId}: {f.Reason}");
        }
        var data = ((ChunkFound)answer).Data;
        if (HttpMethods.IsGet(ctx.Request.Method))
        {
            if (await ChargeAsync(ctx, throttle, BytesToSend(ctx.Request, data.Length, etag)).ConfigureAwait(false) is { } refused) return refused;
            GatewayMetrics.ChunksServed.Add(1);
        }
        if (ctx.Request.Headers.Range.Count == 0 && ctx.Request.Headers.IfNoneMatch.Count == 0)
        {
            // The common case (whole chunk, no conditions left to evaluate) is written directly: measurably cheaper
            // per request than the general file result.
            return new WholeChunkResult(data, etag.ToString());
        }
        // Range, If-Range and 206/416 are handled by the file result.
        return TypedResults.Bytes(data, "application/octet-stream", enableRangeProcessing: true, entityTag: etag);
    }

    /// <summary>
    /// Charges a GET's bytes to the device's download budgets (the same ones chunks use); the 429 or 503 answer when
    /// they refuse, else null.
    /// </summary>
    private static async Task<IResult?> ChargeAsync(HttpContext ctx, DownloadThrottle throttle, long cost)
    {
        var headers = ctx.Response.Headers;
        var deviceId = ctx.Features.Get<AuthenticatedDevice>()!.DeviceId;
        ThrottleDecision decision;
        try
        {
            decision = await throttle.TryConsumeAsync(deviceId, cost, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (BudgetUnavailableException ex)
        {
            headers.CacheControl = "no-store";
            headers.RetryAfter = "5";
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "budgets_unavailable", ex.Message + " Retry later.");
        }
        if (!decision.Allowed)
        {
            GatewayMetrics.Throttled.Add(1, new KeyValuePair<string, object?>("limit", decision.Reason));
            headers.CacheControl = "no-store";
            headers.RetryAfter = ((long)decision.RetryAfter.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return HttpProblems.Problem(StatusCodes.Status429TooManyRequests, "throttled",
                $"Download limit reached ({decision.Reason}); retry after {headers.RetryAfter} seconds.");
        }
        GatewayMetrics.ChunkBytesServed.Add(cost);
        return null;
    }

    /// <summary>
    /// A pack object from the store folder: content addressed like a chunk (ETag = id, immutable), served with Range
    /// (a device asks for runs of chunk objects inside it), each GET charged the bytes it sends.
    /// </summary>
    private static async Task<IResult> GetPackAsync(string prefix, string packId, HttpContext ctx, FileSystemStore store, DownloadThrottle throttle)
    {
        if (await DeviceEndpoints.AuthorizeDeviceAsync(ctx, deviceId: null).ConfigureAwait(false) is { } denied) return denied;
        if (!ChunkId.TryParse(packId, out var id) || !string.Equals(prefix, packId[..2], StringComparison.Ordinal))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_pack_id",
                "Pack path must be packs/<first 2 hex of id>/<64 lower-case hex id>.");
        var info = new FileInfo(store.FullPath(StoreLayout.PackPath(id)));
        if (!info.Exists)
        {
            ctx.Response.Headers.CacheControl = "no-store";
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "pack_not_found", $"No pack {packId} in the store.");
        }
        var etag = new EntityTagHeaderValue($"\"{packId}\"");
        ctx.Response.Headers.CacheControl = ImmutableCacheControl;
        if (HttpMethods.IsGet(ctx.Request.Method)
            && await ChargeAsync(ctx, throttle, BytesToSend(ctx.Request, info.Length, etag)).ConfigureAwait(false) is { } refused) return refused;
        return TypedResults.PhysicalFile(info.FullName, "application/octet-stream", enableRangeProcessing: true, entityTag: etag);
    }

    private sealed class WholeChunkResult(byte[] data, string etag) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/octet-stream";
            response.ContentLength = data.Length;
            response.Headers.ETag = etag;
            response.Headers.AcceptRanges = "bytes";
            return HttpMethods.IsHead(httpContext.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(data, httpContext.RequestAborted).AsTask();
        }
    }

    // What a GET will actually send, so the device is charged exactly that: the single requested range when the file
    // result will honour it, else the whole chunk. An If-Range that does not name this chunk's ETag strongly (or is a
    // date: chunks carry no Last-Modified) makes the range void, and the whole chunk is sent.
    internal static long BytesToSend(HttpRequest request, long length, EntityTagHeaderValue etag)
    {
        var headers = request.GetTypedHeaders();
        var range = headers.Range;
        if (range is null || range.Ranges.Count != 1) return length;
        if (request.Headers.IfRange.Count > 0 && (headers.IfRange?.EntityTag is not { } tag || !tag.Compare(etag, useStrongComparison: true)))
            return length;
        var r = range.Ranges.First();
        if (r.From is { } from)
        {
            if (from >= length) return 0;
            var to = Math.Min(r.To ?? length - 1, length - 1);
            return Math.Max(0, to - from + 1);
        }
        return r.To is { } suffix ? Math.Min(suffix, length) : length;
    }

    private static Task<IResult> GetDeltaFileAsync(string product, string fromVersion, string file, HttpContext ctx, FileSystemStore store) =>
        StoreNames.IsValidVersion(fromVersion)
            ? GetStoreFileAsync(ctx, store, StoreLayout.DeltasDirectory, product, file, fromVersion)
            : Task.FromResult<IResult>(HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_store_path",
                $"'{fromVersion}' is not a valid version in a delta path (deltas/<product>/<from>/<to>.json)."));

    private static async Task<IResult> GetStoreFileAsync(HttpContext ctx, FileSystemStore store, string kind, string product, string file, string? fromVersion = null)
    {
        // Delta manifests live one level deeper: deltas/<product>/<from>/<to>.json.
        if (fromVersion is not null) product = $"{product}/{fromVersion}";
        if (await DeviceEndpoints.AuthorizeDeviceAsync(ctx, deviceId: null).ConfigureAwait(false) is { } denied) return denied;
        if (!StoreNames.IsValidProduct(fromVersion is null ? product : product[..product.IndexOf('/')]) || !FilePattern().IsMatch(file))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_store_path",
                $"'{kind}/{product}/{file}' is not a valid store path (letters, digits, '.', '_', '-', '+'; no slashes).");
        return await ServeFileAsync(ctx, store, $"{kind}/{product}/{file}").ConfigureAwait(false);
    }

    [GeneratedRegex(@"^[1-9][0-9]{0,8}\.root\.json\z")]
    private static partial Regex RootFilePattern();

    private static async Task<IResult> GetRootFileAsync(string file, HttpContext ctx, FileSystemStore store)
    {
        if (await DeviceEndpoints.AuthorizeDeviceAsync(ctx, deviceId: null).ConfigureAwait(false) is { } denied) return denied;
        if (!RootFilePattern().IsMatch(file))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_store_path", $"'root/{file}' is not a root document path (root/<N>.root.json).");
        return await ServeFileAsync(ctx, store, $"root/{file}").ConfigureAwait(false);
    }

    private static async Task<IResult> ServeFileAsync(HttpContext ctx, FileSystemStore store, string relative)
    {
        var path = store.FullPath(relative);
        var file = Path.GetFileName(relative);
        byte[] data;
        try
        {
            data = await File.ReadAllBytesAsync(path, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            ctx.Response.Headers.CacheControl = "no-store";
            return HttpProblems.Problem(StatusCodes.Status404NotFound, "not_found", $"No {relative} in the store.");
        }
        // Index and channel files change when releases are published; clients revalidate with the ETag.
        ctx.Response.Headers.CacheControl = "no-cache";
        var etag = new EntityTagHeaderValue($"\"{Convert.ToHexStringLower(SHA256.HashData(data))}\"");
        var contentType = file.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "application/octet-stream";
        return TypedResults.Bytes(data, contentType, enableRangeProcessing: true, entityTag: etag);
    }
}
