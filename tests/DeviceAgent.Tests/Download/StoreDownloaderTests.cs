using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.DeviceAgent.Tests.Download;

public sealed class StoreDownloaderTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ChunkCache _cache;
    private readonly HttpClient _http = StoreDownloader.CreateHttpClient();
    private readonly byte[] _chunk = RandomNumberGenerator.GetBytes(50_000);
    private readonly string _id;
    private string Rel => $"chunks/{_id[..2]}/{_id}";

    public StoreDownloaderTests()
    {
        _cache = new ChunkCache(_dir.Folder("cache"), _dir.Folder("partial"));
        _id = Convert.ToHexStringLower(SHA256.HashData(_chunk));
    }

    public void Dispose()
    {
        _http.Dispose();
        _dir.Dispose();
    }

    // A short rate window so the stall and trickle guards trip within a second.
    private static DownloadSettings Fast => TestDevice.FastDownloads with { MinRateWindowSeconds = 0.5 };

    private StoreDownloader Downloader(params StoreSource[] sources) =>
        new(_http, sources, Fast, _cache, GrantLimiter.Unlimited) { RoundsPerRequest = 2 };

    private RequestDelegate Serve(byte[] body) => async ctx =>
    {
        ctx.Response.ContentLength = body.Length;
        await ctx.Response.Body.WriteAsync(body);
    };

    [Fact]
    public async Task Fetches_verifies_and_then_serves_from_the_cache()
    {
        var hits = 0;
        string? path = null;
        await using var server = await TestServer.StartAsync(async ctx => { hits++; path = ctx.Request.Path; await Serve(_chunk)(ctx); });
        var d = Downloader(StoreSource.Mirror(server.BaseUrl));
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal(1, hits);
        Assert.Equal("/" + Rel, path);
        Assert.Equal(_chunk, _cache.TryRead(_id));
    }

    [Fact]
    public async Task Fails_over_from_an_erroring_and_a_tampering_source()
    {
        await using var broken = await TestServer.StartAsync(ctx => { ctx.Response.StatusCode = 500; return Task.CompletedTask; });
        var tampered = (byte[])_chunk.Clone();
        tampered[100] ^= 1;
        await using var evil = await TestServer.StartAsync(Serve(tampered));
        await using var good = await TestServer.StartAsync(Serve(_chunk));
        var d = Downloader(StoreSource.Mirror(broken.BaseUrl), StoreSource.Mirror(evil.BaseUrl), StoreSource.Mirror(good.BaseUrl));
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal(_chunk, _cache.TryRead(_id));
    }

    [Fact]
    public async Task Gives_up_after_the_rounds_with_every_source_named()
    {
        await using var missing = await TestServer.StartAsync(ctx => { ctx.Response.StatusCode = 404; return Task.CompletedTask; });
        var d = Downloader(StoreSource.Mirror(missing.BaseUrl));
        var e = await Assert.ThrowsAsync<DownloadFailedException>(() => d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None));
        Assert.Contains("HTTP 404", e.Message);
        Assert.False(_cache.Contains(_id));
    }

    [Fact]
    public async Task Sends_the_credential_only_to_the_gateway()
    {
        var auth = new List<string?>();
        await using var gw = await TestServer.StartAsync(ctx =>
        {
            lock (auth) auth.Add(ctx.Request.Headers.Authorization);
            ctx.Response.StatusCode = 503;
            return Task.CompletedTask;
        });
        await using var mirror = await TestServer.StartAsync(async ctx =>
        {
            lock (auth) auth.Add(ctx.Request.Headers.Authorization);
            await Serve(_chunk)(ctx);
        });
        var d = Downloader(StoreSource.Gateway(gw.BaseUrl, DeviceCredential.Signer("dev-1", "s3cret", RequestSequence.Shared)), StoreSource.Mirror(mirror.BaseUrl));
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal(2, auth.Count);
        Assert.StartsWith("Orch-HMAC-SHA256 device=dev-1, seq=", auth[0]);
        Assert.DoesNotContain("s3cret", auth[0]);
        Assert.DoesNotContain(Convert.ToBase64String("s3cret"u8), auth[0]);
        Assert.Equal("", auth[1] ?? ""); // mirrors get no credential
    }

    [Fact]
    public async Task A_429_paces_and_never_fails_a_chunk_however_many_rounds_it_takes()
    {
        var requests = 0;
        await using var server = await TestServer.StartAsync(async ctx =>
        {
            if (Interlocked.Increment(ref requests) <= 6)
            {
                ctx.Response.StatusCode = 429; // no Retry-After: the agent waits its base backoff
                return;
            }
            await Serve(_chunk)(ctx);
        });
        // One round per request: a single failure would give the chunk up, six 429s must not.
        var d = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], Fast, _cache, GrantLimiter.Unlimited) { RoundsPerRequest = 1 };
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal(_chunk, _cache.TryRead(_id));
        Assert.Equal(7, requests);
        Assert.Equal(6, d.PacedWaits);
    }

    [Fact]
    public async Task Obeys_retry_after_on_429()
    {
        var times = new List<long>();
        await using var server = await TestServer.StartAsync(async ctx =>
        {
            times.Add(Stopwatch.GetTimestamp());
            if (times.Count == 1)
            {
                ctx.Response.StatusCode = 429;
                ctx.Response.Headers.RetryAfter = "1";
                return;
            }
            await Serve(_chunk)(ctx);
        });
        var d = Downloader(StoreSource.Mirror(server.BaseUrl));
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal(2, times.Count);
        Assert.True(Stopwatch.GetElapsedTime(times[0], times[1]) >= TimeSpan.FromMilliseconds(950),
            $"retried after {Stopwatch.GetElapsedTime(times[0], times[1]).TotalMilliseconds} ms despite Retry-After: 1");
    }

    [Fact]
    public async Task Aborts_endless_data_and_refuses_an_oversized_declared_length()
    {
        var endlessSent = 0L;
        await using var endless = await TestServer.StartAsync(async ctx =>
        {
            var block = new byte[16 * 1024];
            try
            {
                while (!ctx.RequestAborted.IsCancellationRequested && endlessSent < 20_000_000_000)
                {
                    await ctx.Response.Body.WriteAsync(block, ctx.RequestAborted);
                    endlessSent += block.Length;
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException) { }
        });
        await using var oversized = await TestServer.StartAsync(async ctx =>
        {
            ctx.Response.ContentLength = 10_000_000;
            await ctx.Response.Body.WriteAsync(new byte[1000]);
        });
        var d = new StoreDownloader(_http, [StoreSource.Mirror(endless.BaseUrl), StoreSource.Mirror(oversized.BaseUrl)], Fast, _cache, GrantLimiter.Unlimited)
        {
            RoundsPerRequest = 1,
        };
        var e = await Assert.ThrowsAsync<DownloadFailedException>(() => d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None));
        Assert.True(e.Message.Contains("exceeds") && e.Message.Contains("declares 10000000 bytes"), e.Message);
        // The agent stops within one read buffer past the expected size.
        Assert.True(d.BytesReceived <= _chunk.Length + 40 + 64 * 1024, $"agent read {d.BytesReceived} bytes of endless data");
        Assert.False(_cache.Contains(_id));
    }

    [Fact]
    public async Task Aborts_a_stalled_response_and_fails_over()
    {
        await using var slow = await TestServer.StartAsync(async ctx =>
        {
            ctx.Response.ContentLength = _chunk.Length;
            await ctx.Response.Body.WriteAsync(_chunk.AsMemory(0, 10));
            await ctx.Response.Body.FlushAsync();
            try { await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted); } catch (OperationCanceledException) { }
        });
        await using var good = await TestServer.StartAsync(Serve(_chunk));
        var d = Downloader(StoreSource.Mirror(slow.BaseUrl), StoreSource.Mirror(good.BaseUrl));
        var sw = Stopwatch.StartNew();
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.Equal(_chunk, _cache.TryRead(_id));
    }

    // One byte every 20 ms (about 50 B/s), until the client gives up.
    private static RequestDelegate Trickle(byte[] body) => async ctx =>
    {
        ctx.Response.ContentLength = body.Length;
        try
        {
            for (var i = 0; i < body.Length; i++)
            {
                await ctx.Response.Body.WriteAsync(body.AsMemory(i, 1), ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                await Task.Delay(20, ctx.RequestAborted);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException) { }
    };

    [Fact]
    public async Task Aborts_a_trickle_below_the_minimum_rate()
    {
        await using var trickle = await TestServer.StartAsync(Trickle(_chunk));
        var d = Downloader(StoreSource.Mirror(trickle.BaseUrl));
        var e = await Assert.ThrowsAsync<DownloadFailedException>(() => d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None));
        Assert.True(e.Message.Contains("below the minimum rate") || e.Message.Contains("slower than the minimum rate"), e.Message);
    }

    [Fact]
    public async Task A_tiny_grant_does_not_lower_the_floor_a_trickling_source_is_held_to()
    {
        // Below the agent's floor, above what a 100 B/s grant split over parallel requests used to allow.
        await using var trickle = await TestServer.StartAsync(Trickle(_chunk));
        var d = new StoreDownloader(_http, [StoreSource.Mirror(trickle.BaseUrl)], Fast with { MinBytesPerSecond = 1024 }, _cache, new GrantLimiter(100, null))
            { RoundsPerRequest = 1 };
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<DownloadFailedException>(() => d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None));
        Assert.Contains("below the minimum rate of 1024 B/s", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the trickle was held for {sw.Elapsed}");
    }

    [Fact]
    public async Task Resumes_a_partial_chunk_with_a_range_request()
    {
        File.WriteAllBytes(_cache.PartialPathOf(_id), _chunk[..20_000]);
        string? range = null;
        await using var server = await TestServer.StartAsync(async ctx =>
        {
            range = ctx.Request.Headers.Range;
            var from = int.Parse(range!["bytes=".Length..].TrimEnd('-'));
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {from}-{_chunk.Length - 1}/{_chunk.Length}";
            ctx.Response.ContentLength = _chunk.Length - from;
            await ctx.Response.Body.WriteAsync(_chunk.AsMemory(from));
        });
        var d = Downloader(StoreSource.Mirror(server.BaseUrl));
        await d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        Assert.Equal("bytes=20000-", range);
        Assert.Equal(30_000, d.BytesReceived);
        Assert.Equal(_chunk, _cache.TryRead(_id));
    }

    [Fact]
    public async Task A_fast_transfer_writes_no_part_file_and_a_slow_one_keeps_whole_pages_of_what_it_received()
    {
        var release = new TaskCompletionSource();
        await using var server = await TestServer.StartAsync(async ctx =>
        {
            ctx.Response.ContentLength = _chunk.Length;
            if (ctx.Request.Query.ContainsKey("fast"))
            {
                await ctx.Response.Body.WriteAsync(_chunk);
                return;
            }
            await ctx.Response.Body.WriteAsync(_chunk.AsMemory(0, 10_000));
            await ctx.Response.Body.FlushAsync();
            await Task.Delay(400);
            await ctx.Response.Body.WriteAsync(_chunk.AsMemory(10_000, 10_000));
            await ctx.Response.Body.FlushAsync();
            await release.Task;
            await ctx.Response.Body.WriteAsync(_chunk.AsMemory(20_000));
        });
        var d = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], Fast with { PartialCheckpointMilliseconds = 200 }, _cache, GrantLimiter.Unlimited);

        Assert.Equal(_chunk, await d.FetchChunkBytesAsync(_id, Rel + "?fast", _chunk.Length + 40, CancellationToken.None));
        Assert.False(File.Exists(_cache.PartialPathOf(_id)), "a chunk that arrived within the checkpoint interval was written to disk");

        var slow = d.FetchChunkBytesAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None);
        var part = _cache.PartialPathOf(_id);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!(File.Exists(part) && new FileInfo(part).Length > 0) && DateTime.UtcNow < deadline) await Task.Delay(20);
        var kept = new FileInfo(part).Length;
        // Whole pages only, so no page of the part file is ever written twice; the unaligned rest waits in memory.
        Assert.Equal(0, kept % Environment.SystemPageSize);
        Assert.InRange(kept, Environment.SystemPageSize, 20_000);
        Assert.Equal(_chunk[..(int)kept], File.ReadAllBytes(part));
        release.SetResult();
        Assert.Equal(_chunk, await slow);
        _cache.DeletePartial(_id);
        Assert.False(File.Exists(part));
    }

    [Fact]
    public async Task Keeps_to_the_grant_rate_and_stops_at_the_grant_size()
    {
        var big = RandomNumberGenerator.GetBytes(1_000_000);
        var id = Convert.ToHexStringLower(SHA256.HashData(big));
        await using var server = await TestServer.StartAsync(Serve(big));
        var limited = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], Fast, _cache, new GrantLimiter(400_000, null));
        var sw = Stopwatch.StartNew();
        await limited.FetchChunkAsync(id, $"chunks/{id[..2]}/{id}", big.Length + 40, CancellationToken.None);
        // One second of burst, then 600 kB at 400 kB/s.
        Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(1.3), $"1 MB at 400 kB/s took only {sw.Elapsed}");

        var capped = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], Fast, new ChunkCache(_dir.Folder("c2"), _dir.Folder("p2")), new GrantLimiter(0, 300_000));
        await Assert.ThrowsAsync<GrantExhaustedException>(() => capped.FetchChunkAsync(id, $"chunks/{id[..2]}/{id}", big.Length + 40, CancellationToken.None));
    }

    [Fact]
    public async Task A_grant_with_nothing_left_sends_no_chunk_request_but_still_fetches_manifests()
    {
        var hits = 0;
        await using var server = await TestServer.StartAsync(async ctx => { Interlocked.Increment(ref hits); await Serve(_chunk)(ctx); });
        var renews = DateTimeOffset.UtcNow.AddMinutes(5);
        var d = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], Fast, _cache, new GrantLimiter(1000, 0, null, renews));
        var e = await Assert.ThrowsAsync<GrantExhaustedException>(() => d.FetchChunkAsync(_id, Rel, _chunk.Length + 40, CancellationToken.None));
        Assert.Equal(renews, e.RenewsAt);
        Assert.Equal(0, hits);
        var files = await d.FetchVerifiedAsync([("manifests/acme/1.json", 1_000_000)], f => f, CancellationToken.None);
        Assert.Equal(_chunk, files[0]); // manifests are not charged to the grant (the gateway charges chunk GETs)
    }

    [Fact]
    public async Task Pacing_to_a_slow_grant_is_not_mistaken_for_a_slow_server()
    {
        var big = RandomNumberGenerator.GetBytes(500_000);
        var id = Convert.ToHexStringLower(SHA256.HashData(big));
        await using var server = await TestServer.StartAsync(Serve(big));
        // The configured floor (1 MB/s) is far above the grant (200 kB/s): the agent must lower its floor, not abort itself.
        var settings = Fast with { MinBytesPerSecond = 1_000_000, MinRateWindowSeconds = 0.25 };
        var d = new StoreDownloader(_http, [StoreSource.Mirror(server.BaseUrl)], settings, _cache, new GrantLimiter(200_000, null)) { RoundsPerRequest = 1 };
        await d.FetchChunkAsync(id, $"chunks/{id[..2]}/{id}", big.Length + 40, CancellationToken.None);
        Assert.Equal(big, _cache.TryRead(id));
    }

    [Fact]
    public void Backoff_grows_exponentially_with_jitter_and_stays_under_the_cap()
    {
        var b = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), new Random(1));
        for (var attempt = 0; attempt < 40; attempt++)
        {
            var ceiling = Math.Min(2000, 100 * Math.Pow(2, Math.Min(attempt, 30)));
            var d = b.Delay(attempt).TotalMilliseconds;
            Assert.InRange(d, ceiling / 2, ceiling);
        }
        var spread = Enumerable.Range(0, 50).Select(_ => b.Delay(3)).Distinct().Count();
        Assert.True(spread > 40, "jitter should spread retries");
    }
}
