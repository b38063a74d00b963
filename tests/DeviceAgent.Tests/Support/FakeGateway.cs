using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Tests.Support;

/// <summary>
/// A small real gateway on Kestrel (127.0.0.1, ephemeral port) speaking device protocol v2: every request's
/// Orch-HMAC-SHA256 signature is verified (shared <see cref="DeviceRequestSignature"/>), device-API sequence numbers must
/// increase, check-in is answered by a test-supplied decision, reports recorded, and the store folder served under
/// /v1/store/ with Range support. Stands in for the node's gateway in agent tests.
/// </summary>
public sealed class FakeGateway : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly WebApplication _app;

    public string BaseUrl { get; }
    public ConcurrentQueue<CheckInRequest> CheckIns { get; } = new();
    public ConcurrentQueue<ProgressReport> Progress { get; } = new();
    public ConcurrentQueue<FailureReport> Failures { get; } = new();
    public ConcurrentQueue<CompletionReport> Completions { get; } = new();
    /// <summary>Device-API requests refused because their sequence number did not increase (the agent must serialize them).</summary>
    public int SequenceViolations => _sequenceViolations;
    private int _sequenceViolations;
    private long _lastDeviceSequence;
    public long StoreBytesServed => Interlocked.Read(ref _storeBytes);
    public int StoreRequests => _storeRequests;
    private long _storeBytes;
    private int _storeRequests;

    /// <summary>
    /// A new device takes over the id (fresh zones, as after re-provisioning): its sequence numbers start over, so the
    /// fake forgets the last one it accepted, as the node does when a credential is rotated.
    /// </summary>
    public void NewDeviceTakesTheId() => Interlocked.Exchange(ref _lastDeviceSequence, 0);

    /// <summary>Decides the answer to a check-in.</summary>
    public Func<CheckInRequest, CheckInResponse> Decide { get; set; } = _ => new CheckInResponse(UpdateAction.None, null, null, null, null, null, 3600, null);

    /// <summary>Check-ins still to answer with 503 + Retry-After: 1 (a busy gateway).</summary>
    public int BusyCheckIns;

    /// <summary>When true the store endpoint answers 503 (so the agent must use mirrors).</summary>
    public bool StoreDown { get; set; }

    private FakeGateway(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public static async Task<FakeGateway> StartAsync(string storeRoot, string credential, string deviceId = "dev-1")
    {
        var key = DeviceRequestSignature.DeriveRequestKey(credential);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeGateway? self = null;
        app.Use(async (ctx, next) =>
        {
            var header = ctx.Request.Headers.Authorization.ToString();
            ctx.Request.EnableBuffering();
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body);
            ctx.Request.Body.Position = 0;
            var prefix = DeviceRequestSignature.Scheme + " ";
            if (!header.StartsWith(prefix, StringComparison.Ordinal)
                || !DeviceRequestSignature.TryParse(header[prefix.Length..], out var auth, out _)
                || auth.DeviceId != deviceId
                || !DeviceRequestSignature.Verify(key, auth, ctx.Request.Method, ctx.Request.Path + ctx.Request.QueryString, DeviceRequestSignature.BodyHash(body.ToArray())))
            {
                ctx.Response.StatusCode = 401;
                await ctx.Response.WriteAsJsonAsync(new ProblemResponse("credential_invalid", "bad device signature"), Json);
                return;
            }
            if (ctx.Request.Path.StartsWithSegments("/v1/devices"))
            {
                lock (self!.CheckIns)
                {
                    if (auth.Sequence <= self._lastDeviceSequence)
                    {
                        self._sequenceViolations++;
                        ctx.Response.StatusCode = 401;
                        return;
                    }
                    self._lastDeviceSequence = auth.Sequence;
                }
            }
            await next(ctx);
        });
        app.MapPost("/v1/devices/{id}/check-in", async (HttpContext ctx) =>
        {
            var req = (await ctx.Request.ReadFromJsonAsync<CheckInRequest>(Json))!;
            self!.CheckIns.Enqueue(req);
            if (Interlocked.Decrement(ref self.BusyCheckIns) >= 0)
            {
                ctx.Response.StatusCode = 503;
                ctx.Response.Headers.RetryAfter = "1";
                await ctx.Response.WriteAsJsonAsync(new ProblemResponse("devices_timeout", "device actors did not answer in time"), Json);
                return;
            }
            await ctx.Response.WriteAsJsonAsync(self.Decide(req), Json);
        });
        app.MapPost("/v1/devices/{id}/progress", async (HttpContext ctx) => self!.Progress.Enqueue((await ctx.Request.ReadFromJsonAsync<ProgressReport>(Json))!));
        app.MapPost("/v1/devices/{id}/failure", async (HttpContext ctx) => self!.Failures.Enqueue((await ctx.Request.ReadFromJsonAsync<FailureReport>(Json))!));
        app.MapPost("/v1/devices/{id}/completion", async (HttpContext ctx) => self!.Completions.Enqueue((await ctx.Request.ReadFromJsonAsync<CompletionReport>(Json))!));
        app.MapGet("/v1/store/{**path}", (HttpContext ctx, string path) =>
        {
            Interlocked.Increment(ref self!._storeRequests);
            if (self.StoreDown) return Results.StatusCode(503);
            var full = Path.GetFullPath(Path.Combine(storeRoot, path));
            if (!full.StartsWith(Path.GetFullPath(storeRoot) + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !File.Exists(full))
                return Results.NotFound();
            Interlocked.Add(ref self._storeBytes, BodyLength(ctx.Request, new FileInfo(full).Length));
            return Results.File(full, "application/octet-stream", enableRangeProcessing: true);
        });
        await app.StartAsync();
        var url = app.Urls.First();
        self = new FakeGateway(app, url.EndsWith('/') ? url : url + "/");
        return self;
    }

    /// <summary>The decision a real server makes for one assigned release: upgrade when behind, repair when the tree differs.</summary>
    public static Func<CheckInRequest, CheckInResponse> Assign(long versionId, string version, string manifestPath, string inventoryDigest,
        IReadOnlyList<string>? mirrors = null, DownloadGrant? grant = null) => req =>
    {
        grant ??= new DownloadGrant(long.MaxValue / 2, 0, DateTimeOffset.UtcNow.AddHours(1));
        if (req.InstalledVersionId != versionId)
            return new CheckInResponse(UpdateAction.Upgrade, version, versionId, manifestPath, null, grant, 3600, mirrors);
        if (req.InventoryDigest != inventoryDigest)
            return new CheckInResponse(UpdateAction.Repair, version, versionId, manifestPath, null, grant, 3600, mirrors);
        return new CheckInResponse(UpdateAction.None, version, versionId, null, null, null, 3600, null);
    };

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }

    /// <summary>Bytes a GET of a file of <paramref name="length"/> bytes sends: the one requested range, or the whole file.</summary>
    private static long BodyLength(HttpRequest request, long length)
    {
        if (request.GetTypedHeaders().Range is not { Ranges.Count: 1 } range || range.Ranges.First().From is not { } from) return length;
        if (from >= length) return 0;
        return Math.Min(range.Ranges.First().To ?? length - 1, length - 1) - from + 1;
    }
}
