using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>
/// A real HTTP reverse proxy in front of a node's gateway that counts the store bytes it passes to devices and can take
/// the gateway's store (<c>/v1/store/...</c>: 503) or the whole gateway (every request: connection aborted) down.
/// Device requests (<c>/v1/devices/...</c>) and admin requests pass through untouched while only the store is down.
/// </summary>
public sealed class GatewayProxy : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream;
    private long _storeBodyBytes;
    private long _storeRequests;
    private long _storeRefused;

    private GatewayProxy(WebApplication app, HttpClient upstream, string baseUrl)
    {
        _app = app;
        _upstream = upstream;
        BaseUrl = baseUrl;
    }

    /// <summary>Base URL ending in '/'.</summary>
    public string BaseUrl { get; }

    /// <summary>While true, every <c>/v1/store/</c> request is answered 503 without reaching the node.</summary>
    public bool StoreDown { get; set; }

    /// <summary>While true, every request's connection is aborted (the gateway is unreachable).</summary>
    public bool AllDown { get; set; }

    /// <summary>Body bytes of successful (200/206) store responses passed to devices.</summary>
    public long StoreBodyBytes => Interlocked.Read(ref _storeBodyBytes);

    /// <summary>Store requests that reached the proxy (answered or refused).</summary>
    public long StoreRequests => Interlocked.Read(ref _storeRequests);

    /// <summary>Store requests refused because the store was down.</summary>
    public long StoreRefused => Interlocked.Read(ref _storeRefused);

    private readonly List<System.Text.Json.Nodes.JsonNode> _completions = [];

    /// <summary>Completion reports devices sent through the proxy, as they went on the wire to the node.</summary>
    public IReadOnlyList<System.Text.Json.Nodes.JsonNode> Completions { get { lock (_completions) return [.. _completions]; } }

    /// <summary>Body bytes of successful chunk responses only (<c>/v1/store/chunks/</c>).</summary>
    public long ChunkBodyBytes => Interlocked.Read(ref _chunkBodyBytes);
    private long _chunkBodyBytes;

    public static async Task<GatewayProxy> StartAsync(string nodeBaseUrl)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var upstream = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, AllowAutoRedirect = false })
        {
            BaseAddress = new Uri(nodeBaseUrl), Timeout = TimeSpan.FromSeconds(60),
        };
        GatewayProxy? self = null;
        app.Run(ctx => self!.ForwardAsync(ctx));
        await app.StartAsync();
        var url = app.Urls.First();
        self = new GatewayProxy(app, upstream, url.EndsWith('/') ? url : url + "/");
        return self;
    }

    private async Task ForwardAsync(HttpContext ctx)
    {
        if (AllDown)
        {
            ctx.Abort();
            return;
        }
        var path = ctx.Request.Path.Value ?? "/";
        var store = path.StartsWith("/v1/store/", StringComparison.Ordinal);
        if (store)
        {
            Interlocked.Increment(ref _storeRequests);
            if (StoreDown)
            {
                Interlocked.Increment(ref _storeRefused);
                ctx.Response.StatusCode = 503;
                ctx.Response.Headers.RetryAfter = "1";
                return;
            }
        }
        using var request = new HttpRequestMessage(new HttpMethod(ctx.Request.Method), path + ctx.Request.QueryString);
        if (ctx.Request.ContentLength > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body, ctx.RequestAborted);
            request.Content = new ByteArrayContent(body.ToArray());
            if (path.EndsWith("/completion", StringComparison.Ordinal))
                lock (_completions) _completions.Add(System.Text.Json.Nodes.JsonNode.Parse(body.ToArray())!);
        }
        foreach (var (name, values) in ctx.Request.Headers)
        {
            if (name is "Host" or "Content-Length" or "Transfer-Encoding" or "Connection") continue;
            if (!request.Headers.TryAddWithoutValidation(name, values.ToArray()))
                request.Content?.Headers.TryAddWithoutValidation(name, values.ToArray());
        }
        using var response = await _upstream.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ctx.RequestAborted);
        ctx.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (name is "Transfer-Encoding" or "Connection") continue;
            ctx.Response.Headers[name] = values.ToArray();
        }
        await using var stream = await response.Content.ReadAsStreamAsync(ctx.RequestAborted);
        var buffer = new byte[16 * 1024];
        var counted = store && response.StatusCode is HttpStatusCode.OK or HttpStatusCode.PartialContent;
        var chunk = path.StartsWith("/v1/store/chunks/", StringComparison.Ordinal);
        int n;
        while ((n = await stream.ReadAsync(buffer, ctx.RequestAborted)) > 0)
        {
            await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, n), ctx.RequestAborted);
            if (!counted) continue;
            Interlocked.Add(ref _storeBodyBytes, n);
            if (chunk) Interlocked.Add(ref _chunkBodyBytes, n);
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}

/// <summary>
/// A plain HTTP mirror of a store folder (no credential, as any static web server), counting the body bytes it serves;
/// it can be taken down (503) or set to serve only its next N requests and then fail.
/// </summary>
public sealed class StoreMirror : IAsyncDisposable
{
    private readonly WebApplication _app;
    private long _bodyBytes;
    private long _requests;
    private long _served;

    private StoreMirror(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    /// <summary>The store folder served (may be set after start, e.g. once the node created it).</summary>
    public string Root { get; set; } = "/nonexistent";

    /// <summary>Base URL ending in '/'.</summary>
    public string BaseUrl { get; }

    /// <summary>While true every request is answered 503.</summary>
    public bool Down { get; set; }

    /// <summary>When set, only this many requests (counted from when it was set) are served; later ones get 503.</summary>
    public long? ServeOnly { get; set; }

    /// <summary>Body bytes served with 200.</summary>
    public long BodyBytes => Interlocked.Read(ref _bodyBytes);

    /// <summary>Requests received.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests answered 200.</summary>
    public long Served => Interlocked.Read(ref _served);

    public static async Task<StoreMirror> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        StoreMirror? self = null;
        app.Run(ctx => self!.ServeAsync(ctx));
        await app.StartAsync();
        var url = app.Urls.First();
        self = new StoreMirror(app, url.EndsWith('/') ? url : url + "/");
        return self;
    }

    private async Task ServeAsync(HttpContext ctx)
    {
        Interlocked.Increment(ref _requests);
        if (Down || ServeOnly is { } budget && budget <= 0)
        {
            ctx.Response.StatusCode = 503;
            ctx.Response.Headers.RetryAfter = "1";
            return;
        }
        if (ServeOnly is { } left) ServeOnly = left - 1;
        var relative = (ctx.Request.Path.Value ?? "").TrimStart('/');
        var root = Path.GetFullPath(Root);
        var full = Path.GetFullPath(Path.Combine(root, relative));
        if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !File.Exists(full))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        var data = await File.ReadAllBytesAsync(full, ctx.RequestAborted);
        // One byte range, as any static server (nginx) serves it: a device reads runs of chunks out of pack objects.
        var body = data.AsMemory();
        ctx.Response.StatusCode = 200;
        if (ctx.Request.GetTypedHeaders().Range is { Ranges.Count: 1 } range && range.Ranges.First().From is { } from && from < data.Length)
        {
            var to = Math.Min(range.Ranges.First().To ?? data.Length - 1, data.Length - 1);
            body = body[(int)from..(int)(to + 1)];
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {from}-{to}/{data.Length}";
        }
        ctx.Response.ContentLength = body.Length;
        ctx.Response.ContentType = "application/octet-stream";
        await ctx.Response.Body.WriteAsync(body, ctx.RequestAborted);
        Interlocked.Add(ref _bodyBytes, body.Length);
        Interlocked.Increment(ref _served);
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
