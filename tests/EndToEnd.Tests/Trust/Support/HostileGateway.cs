using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Orchestrator.EndToEnd.Tests.Trust.Support;

/// <summary>
/// A scripted hostile gateway in front of a real node (Kestrel on 127.0.0.1): every request is forwarded to the
/// node verbatim, except check-ins, which <see cref="OnCheckIn"/> may answer any way it likes (rewrite the node's
/// answer, replay an old one, hold it, forward it under another device's credential...).
/// </summary>
public sealed class HostileGateway : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream;

    /// <summary>One check-in as the hostile gateway sees it.</summary>
    /// <param name="DeviceId">Device id of the route.</param>
    /// <param name="Body">The agent's JSON body.</param>
    /// <param name="Authorization">The agent's credential header.</param>
    public sealed record CheckIn(string DeviceId, JsonObject Body, string? Authorization);

    /// <summary>Answer a check-in: status code and JSON body. Default: forward to the node unchanged.</summary>
    public Func<CheckIn, Task<(int Status, string Body)>>? OnCheckIn { get; set; }

    /// <summary>Retry-After (seconds) sent with every refusal (4xx/5xx) <see cref="OnCheckIn"/> answers; null sends none.</summary>
    public int? CheckInRetryAfterSeconds { get; set; }

    /// <summary>Store files to serve instead of the node's (path relative to <c>/v1/store/</c>); null forwards.</summary>
    public Func<string, byte[]?>? OnStore { get; set; }

    /// <summary>When set, forwarded chunk and pack bodies are sent at about this many bytes per second (a trickling gateway).</summary>
    public int? TrickleChunksBytesPerSecond { get; set; }

    /// <summary>For a forwarded store request (path, Range header): cut the connection after this many body bytes; null forwards all.</summary>
    public Func<string, string?, long?>? CutAfter { get; set; }

    /// <summary>For a forwarded store request (path, Range header): flip one bit of the body byte at this offset; null forwards it intact.</summary>
    public Func<string, string?, long?>? FlipAt { get; set; }

    /// <summary>One store request as the device made it and what was sent back (a counting proxy's log).</summary>
    /// <param name="Path">Path relative to <c>/v1/store/</c>.</param>
    /// <param name="Range">The device's Range header, if any.</param>
    /// <param name="Bytes">Body bytes of a successful response sent to the device (0 for an error response).</param>
    public sealed record StoreRequest(string Path, string? Range, long Bytes);

    /// <summary>Every store request, in order of completion.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<StoreRequest> StoreLog { get; } = new();

    private int _storeRequestsInFlight;

    /// <summary>
    /// Waits until every store request begun so far is in <see cref="StoreLog"/>. A killed agent's transfer is logged only
    /// when the proxy notices the client is gone, so a test clears the log for a rerun only after this.
    /// </summary>
    public async Task SettleAsync()
    {
        // Quiet for a while, not just once: a request the agent sent just before it died may still be on its way in.
        var until = DateTime.UtcNow.AddSeconds(30);
        var quietSince = DateTime.UtcNow;
        while (DateTime.UtcNow - quietSince < TimeSpan.FromMilliseconds(300))
        {
            if (Volatile.Read(ref _storeRequestsInFlight) > 0) quietSince = DateTime.UtcNow;
            if (DateTime.UtcNow > until) throw new TimeoutException("a store request of the proxy did not end within 30 s");
            await Task.Delay(20);
        }
    }

    /// <summary>Every check-in body seen, in order.</summary>
    public List<JsonObject> CheckIns { get; } = [];

    public string BaseUrl { get; }

    private HostileGateway(WebApplication app, HttpClient upstream, string baseUrl)
    {
        _app = app;
        _upstream = upstream;
        BaseUrl = baseUrl;
    }

    public static async Task<HostileGateway> StartAsync(string nodeBaseUrl)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new HttpClient { BaseAddress = new Uri(nodeBaseUrl) };
        HostileGateway? self = null;
        app.Map("/{**path}", async (HttpContext ctx) => await self!.HandleAsync(ctx));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self = new HostileGateway(app, upstream, address.TrimEnd('/') + "/");
        return self;
    }

    /// <summary>Forwards a check-in body to the node (optionally as another device) and returns the node's answer.</summary>
    /// <param name="deviceId">Device the check-in is sent as.</param>
    /// <param name="body">The check-in body.</param>
    /// <param name="authorization">The agent's own signed header, forwarded unchanged.</param>
    /// <param name="secret">Instead: sign as <paramref name="deviceId"/> with this secret (a gateway holding another device's credential).</param>
    public async Task<(int Status, string Body)> ForwardAsync(string deviceId, JsonObject body, string? authorization, string? secret = null) =>
        await ForwardAsync(deviceId, body, authorization, secret, null);

    /// <summary>
    /// Forwards <paramref name="c"/> with its body changed on the way, signed again as the device with
    /// <paramref name="secret"/> under the agent's own sequence number (the node never saw it, and an agent's sequence
    /// runs ahead of the clock, so a fresh number could be refused as a replay).
    /// </summary>
    public Task<(int Status, string Body)> ForwardChangedAsync(CheckIn c, string secret)
    {
        var header = c.Authorization ?? throw new InvalidOperationException("the check-in carries no Authorization header to take the sequence from");
        var parameter = header[(header.IndexOf(' ') + 1)..];
        if (!Orchestrator.Messages.Protocol.DeviceRequestSignature.TryParse(parameter, out var auth, out var error))
            throw new InvalidOperationException($"the agent's Authorization header does not parse: {error}");
        return ForwardAsync(c.DeviceId, c.Body, null, secret, auth.Sequence);
    }

    private async Task<(int Status, string Body)> ForwardAsync(string deviceId, JsonObject body, string? authorization, string? secret, long? sequence)
    {
        var path = $"v1/devices/{deviceId}/check-in";
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        if (secret is not null)
            authorization = Orchestrator.TestSupport.DeviceSigning.Header(deviceId, secret, "POST", "/" + path, bytes,
                sequence ?? Orchestrator.TestSupport.DeviceSigning.NextSequence(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
        using var response = await _upstream.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "/";
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (ctx.Request.Method == "POST" && segments is ["v1", "devices", var deviceId, "check-in"])
        {
            using var reader = new StreamReader(ctx.Request.Body);
            var body = (JsonObject)JsonNode.Parse(await reader.ReadToEndAsync())!;
            lock (CheckIns) CheckIns.Add(body);
            var auth = ctx.Request.Headers.Authorization.ToString();
            var (status, answer) = OnCheckIn is { } hook
                ? await hook(new CheckIn(deviceId, body, auth))
                : await ForwardAsync(deviceId, body, auth);
            ctx.Response.StatusCode = status;
            ctx.Response.ContentType = "application/json";
            if (OnCheckIn is not null && status >= 400 && CheckInRetryAfterSeconds is { } wait)
                ctx.Response.Headers.RetryAfter = wait.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await ctx.Response.WriteAsync(answer);
            return;
        }
        var storePath = segments is ["v1", "store", ..] ? string.Join('/', segments[2..]) : null;
        if (storePath is null)
        {
            await ProxyAsync(ctx, path, segments, null, null);
            return;
        }
        Interlocked.Increment(ref _storeRequestsInFlight);
        try
        {
            string? storeRange = ctx.Request.Headers.TryGetValue("Range", out var r) ? r.ToString() : null;
            await ProxyAsync(ctx, path, segments, storePath, storeRange);
        }
        finally
        {
            Interlocked.Decrement(ref _storeRequestsInFlight);
        }
    }

    private async Task ProxyAsync(HttpContext ctx, string path, string[] segments, string? storePath, string? range)
    {
        if (storePath is not null && OnStore?.Invoke(storePath) is { } replaced)
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/octet-stream";
            await ctx.Response.Body.WriteAsync(replaced);
            StoreLog.Enqueue(new StoreRequest(storePath, range, replaced.Length));
            return;
        }
        using var forward = new HttpRequestMessage(new HttpMethod(ctx.Request.Method), path.TrimStart('/') + ctx.Request.QueryString);
        if (ctx.Request.ContentLength > 0 || ctx.Request.Headers.ContainsKey("Transfer-Encoding"))
        {
            var ms = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(ms);
            forward.Content = new ByteArrayContent(ms.ToArray());
            if (ctx.Request.ContentType is { } ct) forward.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(ct);
        }
        foreach (var h in new[] { "Authorization", "Range", "If-None-Match", "If-Range" })
            if (ctx.Request.Headers.TryGetValue(h, out var v)) forward.Headers.TryAddWithoutValidation(h, v.ToString());
        using var response = await _upstream.SendAsync(forward, HttpCompletionOption.ResponseHeadersRead);
        ctx.Response.StatusCode = (int)response.StatusCode;
        foreach (var (k, v) in response.Headers) if (k is not "Transfer-Encoding") ctx.Response.Headers[k] = v.ToArray();
        foreach (var (k, v) in response.Content.Headers) ctx.Response.Headers[k] = v.ToArray();
        if (TrickleChunksBytesPerSecond is { } rate && segments is ["v1", "store", "chunks" or "packs", ..])
        {
            await using var body = await response.Content.ReadAsStreamAsync();
            var slice = new byte[Math.Max(1, rate / 4)];
            int n;
            long sent = 0;
            try
            {
                while ((n = await body.ReadAsync(slice)) > 0)
                {
                    await ctx.Response.Body.WriteAsync(slice.AsMemory(0, n));
                    await ctx.Response.Body.FlushAsync();
                    sent += n;
                    await Task.Delay(250, ctx.RequestAborted);
                }
            }
            finally
            {
                StoreLog.Enqueue(new StoreRequest(storePath!, range, sent));
            }
            return;
        }
        if (storePath is null)
        {
            await response.Content.CopyToAsync(ctx.Response.Body);
            return;
        }
        await using var content = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[1 << 16];
        long copied = 0;
        int read;
        var cut = CutAfter?.Invoke(storePath, range);
        var flip = FlipAt?.Invoke(storePath, range);
        while ((read = await content.ReadAsync(buffer)) > 0)
        {
            if (flip is { } f && f >= copied && f < copied + read) buffer[f - copied] ^= 1;
            if (cut is { } c && copied + read >= c)
            {
                await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, (int)(c - copied)));
                await ctx.Response.Body.FlushAsync();
                StoreLog.Enqueue(new StoreRequest(storePath, range, c));
                // Time for the device to read what was sent before the reset, so a cut loses no delivered byte.
                await Task.Delay(1000);
                ctx.Abort();
                return;
            }
            await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, read));
            copied += read;
        }
        // An error body (a 404's problem details) is not content: the agent counts no byte of it, nor does the plan.
        StoreLog.Enqueue(new StoreRequest(storePath, range, response.IsSuccessStatusCode ? copied : 0));
    }

    public async ValueTask DisposeAsync()
    {
        _upstream.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
