using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// A real HTTP reverse proxy in front of several gateways (a load balancer): request N goes to gateway N mod count,
/// so one device's requests alternate between the nodes. It records every chunk response the gateways gave (which
/// gateway, status, body bytes, when it ended), also when the device abandoned the request, and can strip the rate from
/// check-in grants (<see cref="IgnoreGrantRate"/>), which makes
/// the real agent behind it a device that does not pace itself: only the gateways' budgets then hold it.
/// </summary>
public sealed class RoundRobinProxy : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient[] _upstreams;
    // One time base for every proxy of the test process, so the responses of several proxies can be merged in time.
    private static readonly Stopwatch Clock = Stopwatch.StartNew();
    private readonly List<ChunkResponse> _chunks = [];
    private long _requests;

    /// <summary>One chunk GET answered through the proxy.</summary>
    /// <param name="Gateway">Index of the gateway that answered.</param>
    /// <param name="Status">HTTP status.</param>
    /// <param name="BodyBytes">Body bytes the gateway sent (passed on to the device unless it had given up).</param>
    /// <param name="Started">When the request arrived (on a clock shared by every proxy of the process).</param>
    /// <param name="Ended">When the gateway's body ended.</param>
    public sealed record ChunkResponse(int Gateway, int Status, long BodyBytes, TimeSpan Started, TimeSpan Ended);

    private RoundRobinProxy(WebApplication app, HttpClient[] upstreams, string baseUrl)
    {
        _app = app;
        _upstreams = upstreams;
        BaseUrl = baseUrl;
    }

    /// <summary>Base URL ending in '/'.</summary>
    public string BaseUrl { get; }

    /// <summary>When true, <c>grant.bytesPerSecond</c> of check-in answers is set to 0 (no rate) on the way to the device.</summary>
    public bool IgnoreGrantRate { get; set; }

    /// <summary>Every chunk response so far.</summary>
    public IReadOnlyList<ChunkResponse> Chunks { get { lock (_chunks) return [.. _chunks]; } }

    public static async Task<RoundRobinProxy> StartAsync(IReadOnlyList<Uri> gateways)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var upstreams = gateways.Select(g => new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, AllowAutoRedirect = false })
        {
            BaseAddress = g, Timeout = TimeSpan.FromSeconds(60),
        }).ToArray();
        RoundRobinProxy? self = null;
        app.Run(ctx => self!.ForwardAsync(ctx));
        await app.StartAsync();
        var url = app.Urls.First();
        self = new RoundRobinProxy(app, upstreams, url.EndsWith('/') ? url : url + "/");
        return self;
    }

    private async Task ForwardAsync(HttpContext ctx)
    {
        var started = Clock.Elapsed;
        var gateway = (int)((Interlocked.Increment(ref _requests) - 1) % _upstreams.Length);
        var path = ctx.Request.Path.Value ?? "/";
        using var request = new HttpRequestMessage(new HttpMethod(ctx.Request.Method), path + ctx.Request.QueryString);
        if (ctx.Request.ContentLength > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body, ctx.RequestAborted);
            request.Content = new ByteArrayContent(body.ToArray());
        }
        foreach (var (name, values) in ctx.Request.Headers)
        {
            if (name is "Host" or "Content-Length" or "Transfer-Encoding" or "Connection") continue;
            if (!request.Headers.TryAddWithoutValidation(name, values.ToArray()))
                request.Content?.Headers.TryAddWithoutValidation(name, values.ToArray());
        }
        // The exchange with the gateway is completed and recorded even when the device gives up on the request (it
        // may cancel a parallel fetch): the gateway has decided and counted it either way, and the test compares the
        // proxy's record with the gateways' counters.
        using var response = await _upstreams[gateway].SendAsync(request, HttpCompletionOption.ResponseHeadersRead, CancellationToken.None);
        var isChunk = path.StartsWith("/v1/store/chunks/", StringComparison.Ordinal) && HttpMethods.IsGet(ctx.Request.Method);
        long bytes = 0;
        try
        {
            ctx.Response.StatusCode = (int)response.StatusCode;
            var rewrite = IgnoreGrantRate && path.EndsWith("/check-in", StringComparison.Ordinal) && response.StatusCode == HttpStatusCode.OK;
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (name is "Transfer-Encoding" or "Connection" || (rewrite && name == "Content-Length")) continue;
                ctx.Response.Headers[name] = values.ToArray();
            }
            if (rewrite)
            {
                var json = JsonNode.Parse(await response.Content.ReadAsStringAsync(ctx.RequestAborted))!;
                if (json["grant"] is JsonObject grant) grant["bytesPerSecond"] = 0;
                await ctx.Response.WriteAsync(json.ToJsonString(), ctx.RequestAborted);
                return;
            }
            await using var stream = await response.Content.ReadAsStreamAsync(CancellationToken.None);
            var buffer = new byte[16 * 1024];
            var deviceGone = false;
            int n;
            while ((n = await stream.ReadAsync(buffer, CancellationToken.None)) > 0)
            {
                bytes += n;
                if (deviceGone) continue;
                try
                {
                    await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, n), ctx.RequestAborted);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException || ctx.RequestAborted.IsCancellationRequested)
                {
                    deviceGone = true;
                }
            }
        }
        finally
        {
            if (isChunk) lock (_chunks) _chunks.Add(new ChunkResponse(gateway, (int)response.StatusCode, bytes, started, Clock.Elapsed));
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        foreach (var u in _upstreams) u.Dispose();
    }
}
