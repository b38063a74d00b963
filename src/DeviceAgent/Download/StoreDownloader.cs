using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Configuration;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Fetches store files (manifests, signatures, chunks) from an ordered list of sources: the gateway first, then
/// plain mirrors. Each request fails over to the next source; when all fail, it backs off (capped exponential,
/// jittered) and tries another round. Guards: a source that answers 429/503 with Retry-After is not asked again
/// before that time; a response longer than declared (endless data) or slower than the minimum rate is aborted;
/// every object is verified against its id before it is used; partial objects resume with HTTP Range.
/// </summary>
public sealed class StoreDownloader
{
    private readonly HttpClient _http;
    private readonly IReadOnlyList<StoreSource> _sources;
    private readonly DownloadSettings _settings;
    private readonly ChunkCache _cache;
    private readonly GrantLimiter _limiter;
    private readonly Backoff _backoff;
    private readonly Action<string> _log;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<StoreSource, DateTimeOffset> _blockedUntil = new();
    private readonly ConcurrentDictionary<StoreSource, DateTimeOffset> _pausedUntil = new();
    private long _bytesReceived;
    private long _bytesCheckpointed;
    private long _pacedWaits;

    /// <summary>Rounds over all sources per request before the request fails (the session then retries as a whole).</summary>
    public int RoundsPerRequest { get; init; } = 3;

    /// <summary>Longest Retry-After the agent honours; a larger value is clamped so a hostile server cannot park the device forever.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Creates a downloader.</summary>
    public StoreDownloader(HttpClient http, IReadOnlyList<StoreSource> sources, DownloadSettings settings, ChunkCache cache,
        GrantLimiter limiter, Action<string>? log = null, Random? random = null, TimeProvider? time = null)
    {
        if (sources.Count == 0) throw new ArgumentException("at least one store source (gateway or mirror) is required", nameof(sources));
        _http = http;
        _sources = sources;
        _settings = settings;
        _cache = cache;
        _limiter = limiter;
        _log = log ?? (_ => { });
        _time = time ?? TimeProvider.System;
        _backoff = new Backoff(TimeSpan.FromMilliseconds(settings.BackoffBaseMilliseconds), TimeSpan.FromMilliseconds(settings.BackoffCapMilliseconds), random);
    }

    /// <summary>Also counts every received byte into the install's running total (kept across sessions and restarts); optional.</summary>
    public InstallByteCounter? Counter { get; init; }

    /// <summary>Bytes this downloader wrote into part files (<see cref="DownloadSettings.PartialCheckpointMilliseconds"/>): the disk writes a resume costs.</summary>
    public long BytesCheckpointed => Interlocked.Read(ref _bytesCheckpointed);

    /// <summary>Bytes received from the network by this downloader (all sources, including discarded ones).</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>The HTTP client the agent uses: no transparent decompression (bytes are verified as stored), bounded redirects.</summary>
    public static HttpClient CreateHttpClient() => new(new SocketsHttpHandler
    {
        AutomaticDecompression = DecompressionMethods.None,
        AllowAutoRedirect = true,
        MaxAutomaticRedirections = 3,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        ConnectTimeout = TimeSpan.FromSeconds(15),
        // An aborted response (endless data, too slow) closes the connection instead of draining more bytes from a hostile server.
        MaxResponseDrainSize = 0,
    })
    { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>
    /// Fetches small store files (e.g. a manifest and its signature) all from the same source and hands them to
    /// <paramref name="accept"/>; when it throws <see cref="ContentRejectedException"/> (bad signature, wrong
    /// product...) the next source is tried, so one bad mirror cannot block a device that has a good one.
    /// </summary>
    /// <param name="files">Store-relative paths to fetch, each with the largest size accepted for it: a response that
    /// declares or delivers more is refused at that size, so a hostile source costs at most that many bytes.</param>
    /// <param name="accept">Verifies the bytes and returns the result.</param>
    /// <param name="ct">Cancellation.</param>
    /// <param name="rounds">Rounds over all sources before giving up; null means <see cref="RoundsPerRequest"/> (1 for a file a store may lack).</param>
    public Task<T> FetchVerifiedAsync<T>(IReadOnlyList<(string Path, long MaxBytes)> files, Func<IReadOnlyList<byte[]>, T> accept, CancellationToken ct,
        int? rounds = null) =>
        WithFailoverAsync(files[0].Path, async (source, token) =>
        {
            var fetched = new List<byte[]>(files.Count);
            foreach (var (path, maxBytes) in files)
            {
                using var buffer = new MemoryStream();
                await TransferAsync(source, path, buffer, 0, maxBytes, token, chargeGrant: false);
                // Sized from the declared length (TransferAsync), the buffer is usually exactly the content: no copy.
                fetched.Add(buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray());
            }
            try
            {
                return accept(fetched);
            }
            catch (ContentRejectedException e)
            {
                throw new SourceFailedException("rejected: " + e.Message) { Rejected = true };
            }
        }, ct, rounds);

    /// <summary>
    /// How long one object's transfer runs before its received bytes are checkpointed into its part file
    /// (<see cref="DownloadSettings.PartialCheckpointMilliseconds"/>).
    /// </summary>
    private TimeSpan PartialCheckpoint => TimeSpan.FromMilliseconds(_settings.PartialCheckpointMilliseconds);

    /// <summary>
    /// Fetches object <paramref name="id"/> and returns its stored bytes, verified (SHA-256 = id): continues a part file
    /// an earlier run kept with HTTP Range, and checkpoints a slow transfer into it
    /// (<see cref="DownloadSettings.PartialCheckpointMilliseconds"/>).
    /// The part file stays until the caller has used the bytes (<see cref="ChunkCache.DeletePartial"/>), so a kill in
    /// between costs nothing to fetch again.
    /// </summary>
    /// <param name="id">Object id.</param>
    /// <param name="relativePath">Store-relative path of the object.</param>
    /// <param name="maxStoredSize">Largest stored size the object can have (plaintext length + header + tag); more is refused as endless data.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<byte[]> FetchChunkBytesAsync(string id, string relativePath, long maxStoredSize, CancellationToken ct)
    {
        using var bytes = await FetchChunkRentedAsync(id, relativePath, maxStoredSize, ct);
        return bytes.Span.ToArray();
    }

    /// <summary>
    /// <see cref="FetchChunkBytesAsync"/> into a pooled buffer the caller disposes (returns), so fetching chunk after
    /// chunk reuses a few buffers instead of leaving one array of each chunk's size to the collector.
    /// </summary>
    /// <param name="id">Object id.</param>
    /// <param name="relativePath">Store-relative path of the object.</param>
    /// <param name="maxStoredSize">Largest stored size the object can have (plaintext length + header + tag); more is refused as endless data.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<RentedBytes> FetchChunkRentedAsync(string id, string relativePath, long maxStoredSize, CancellationToken ct)
    {
        var kept = _cache.ReadPartial(id, maxStoredSize);
        if (kept.Length > 0 && ChunkCache.Matches(kept, id)) return new RentedBytes(kept, kept.Length, pooled: false); // a previous run got every byte before it stopped
        if (_limiter.Exhausted)
            throw new GrantExhaustedException("download grant has no bytes left; checking in again when it renews", _limiter.RenewsAt);
        return await WithFailoverAsync(relativePath, async (source, token) =>
        {
            var prefix = _cache.ReadPartial(id, maxStoredSize);
            if (prefix.Length == maxStoredSize)
            {
                _cache.DeletePartial(id);
                prefix = [];
            }
            using var sink = new PartialDownload(_cache.PartialPathOf(id), prefix, PartialCheckpoint, _time, maxStoredSize);
            try
            {
                await TransferAsync(source, relativePath, sink, prefix.Length, maxStoredSize, token);
            }
            finally
            {
                Interlocked.Add(ref _bytesCheckpointed, sink.Checkpointed);
            }
            if (!ChunkCache.Matches(sink.Received, id))
            {
                _cache.DeletePartial(id);
                throw new SourceFailedException($"bytes do not hash to chunk id {id} (tampered, truncated or corrupt); discarded");
            }
            return sink.Detach();
        }, ct);
    }

    /// <summary>
    /// Makes sure object <paramref name="id"/> is in the cache, for objects read again after their download (delta patch
    /// parts): returns at once if it is, otherwise fetches it (<see cref="FetchChunkBytesAsync"/>) and caches it.
    /// </summary>
    /// <param name="id">Object id.</param>
    /// <param name="relativePath">Store-relative path of the object.</param>
    /// <param name="maxStoredSize">Largest stored size the object can have; more is refused as endless data.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task FetchChunkAsync(string id, string relativePath, long maxStoredSize, CancellationToken ct)
    {
        if (_cache.Contains(id)) return;
        _cache.Put(id, await FetchChunkBytesAsync(id, relativePath, maxStoredSize, ct));
    }

    /// <summary>
    /// Fetches the chunk objects of one coalesced <paramref name="range"/> of a pack with one HTTP Range request and hands
    /// each to <paramref name="place"/> once its bytes hash to its id. A request cut mid-way is continued (next round or
    /// source) from the first chunk not yet placed, and inside it from the bytes already received; a chunk whose bytes
    /// do not hash to its id is refused with the source that served it; under a byte-limited grant a request asks for no
    /// more chunks than the grant still allows. Returns the chunks never placed (every source failed; the caller fetches
    /// them as their own objects).
    /// </summary>
    /// <param name="range">The pack range and the wanted chunks inside it.</param>
    /// <param name="place">Decodes and places one verified chunk object.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<IReadOnlyList<PackedChunk>> FetchPackRangeAsync(PackRange range, Action<PackedChunk, ReadOnlySpan<byte>> place, CancellationToken ct)
    {
        var path = StoreLayout.PackPath(range.Pack);
        var next = 0;          // chunks before it were placed
        byte[] held = [];      // what arrived of chunk `next`
        try
        {
            while (next < range.Chunks.Count)
            {
                if (_limiter.Exhausted)
                    throw new GrantExhaustedException("download grant has no bytes left; checking in again when it renews", _limiter.RenewsAt);
                await WithFailoverAsync(path, async (source, token) =>
                {
                    var remaining = WithinGrant(range.Chunks.Skip(next).ToList(), held.Length);
                    var end = remaining.Max(c => c.Offset + c.Stored);
                    var rejected = false;
                    using var sink = new PackRangeSink(remaining, held, (chunk, stored) =>
                    {
                        if (!ChunkCache.Matches(stored, chunk.Chunk.Hex))
                        {
                            rejected = true;
                            throw new SourceFailedException($"bytes {chunk.Offset}..{chunk.Offset + chunk.Stored - 1} of pack {range.Pack} do not hash to chunk id {chunk.Chunk} (tampered or corrupt); refused") { Rejected = true };
                        }
                        place(chunk, stored);
                        next++;
                    });
                    try
                    {
                        await TransferAsync(source, path, sink, sink.Start, end, token, rangeLast: end - 1);
                        if (!sink.Complete)
                            throw new SourceFailedException($"range of pack {range.Pack} ended at byte {sink.Position}, before its last chunk (truncated)");
                    }
                    finally
                    {
                        held = rejected ? [] : sink.HeldPrefix.ToArray();
                    }
                    return 0;
                }, ct);
            }
            return [];
        }
        catch (DownloadFailedException e)
        {
            _log($"pack range {range.Pack} {range.Offset}+{range.Length}: {e.Message}; its {range.Chunks.Count - next} remaining chunk(s) are fetched as chunk objects");
            return range.Chunks.Skip(next).ToList();
        }
    }

    /// <summary>
    /// The leading chunks of <paramref name="chunks"/> whose span the download grant still allows (at least one): a
    /// request never asks a source for bytes the device may not take, so a small grant costs no aborted transfer.
    /// </summary>
    private List<PackedChunk> WithinGrant(List<PackedChunk> chunks, long held)
    {
        if (_limiter.Remaining is not { } left) return chunks;
        var start = chunks[0].Offset + held;
        var fit = 1;
        while (fit < chunks.Count && chunks[fit].Offset + chunks[fit].Stored - start <= left) fit++;
        return fit == chunks.Count ? chunks : chunks[..fit];
    }

    private async Task<T> WithFailoverAsync<T>(string relativePath, Func<StoreSource, CancellationToken, Task<T>> attempt, CancellationToken ct, int? rounds = null)
    {
        var failures = new List<string>();
        for (var round = 0; ;)
        {
            failures.Clear();
            var rejected = false;
            // A 429 is the server pacing the device, not a failure: a round in which any source paced us does not count
            // towards giving the request up, so throttling alone can never fail a chunk (or a session).
            var paced = false;
            foreach (var source in _sources)
            {
                if (_pausedUntil.TryGetValue(source, out var pause) && pause > DateTimeOffset.UtcNow)
                {
                    paced = true;
                    failures.Add($"{source.Name}: pacing until {pause:O}");
                    continue;
                }
                if (_blockedUntil.TryGetValue(source, out var until) && until > DateTimeOffset.UtcNow)
                {
                    failures.Add($"{source.Name}: unavailable until {until:O}");
                    continue;
                }
                try
                {
                    return await attempt(source, ct);
                }
                catch (SourceFailedException e) when (e.Throttled)
                {
                    paced = true;
                    var ra = e.RetryAfter ?? TimeSpan.FromMilliseconds(_settings.BackoffBaseMilliseconds);
                    Pause(source, ra > MaxRetryAfter ? MaxRetryAfter : ra);
                    failures.Add($"{source.Name}: {e.Message}");
                    _log($"download {relativePath} from {source.Name} paced by the server: retry after {ra.TotalSeconds:0.#}s");
                }
                catch (SourceFailedException e)
                {
                    failures.Add($"{source.Name}: {e.Message}");
                    _log($"download {relativePath} from {source.Name} failed: {e.Message}");
                    rejected |= e.Rejected;
                    if (e.RetryAfter is { } ra)
                        _blockedUntil[source] = DateTimeOffset.UtcNow + (ra > MaxRetryAfter ? MaxRetryAfter : ra);
                }
                catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
                {
                    failures.Add($"{source.Name}: {e.Message}");
                    _log($"download {relativePath} from {source.Name} failed: {e.Message}");
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    failures.Add($"{source.Name}: no response within {_settings.RequestTimeoutSeconds}s");
                    _log($"download {relativePath} from {source.Name} timed out");
                }
            }
            TimeSpan delay;
            if (paced)
            {
                Interlocked.Increment(ref _pacedWaits);
                delay = TimeSpan.Zero;
            }
            else
            {
                round++;
                if (round >= (rounds ?? RoundsPerRequest))
                    throw new DownloadFailedException(relativePath, failures) { ContentRejected = rejected };
                delay = _backoff.Delay(round - 1);
            }
            // Wait until the first source may be asked again (one shared pause per source for all parallel requests).
            var earliest = _sources.Select(s => Later(_pausedUntil.TryGetValue(s, out var p) ? p : DateTimeOffset.MinValue,
                _blockedUntil.TryGetValue(s, out var u) ? u : DateTimeOffset.MinValue)).Min();
            var untilFree = earliest - DateTimeOffset.UtcNow;
            if (untilFree > delay) delay = untilFree + TimeSpan.FromMilliseconds(50); // timers may fire a little early
            if (delay > TimeSpan.Zero) await Task.Delay(delay, ct);
        }
    }

    private static DateTimeOffset Later(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    // Every parallel request shares one pause per source: the longest Retry-After any of them was told wins.
    private void Pause(StoreSource source, TimeSpan retryAfter)
    {
        var until = DateTimeOffset.UtcNow + retryAfter;
        _pausedUntil.AddOrUpdate(source, until, (_, existing) => existing > until ? existing : until);
    }

    /// <summary>Times a request waited because every source it could use was pacing the device (429), not failing.</summary>
    public long PacedWaits => Interlocked.Read(ref _pacedWaits);

    /// <summary>
    /// One GET from one source into <paramref name="sink"/>; returns the total length (offset + new bytes). With
    /// <paramref name="rangeLast"/> (a pack range) only a 206 for exactly bytes <paramref name="offset"/>..<paramref name="rangeLast"/> is accepted.
    /// </summary>
    private async Task<long> TransferAsync(StoreSource source, string relativePath, Stream sink, long offset, long limit, CancellationToken ct, bool chargeGrant = true,
        long? rangeLast = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, source.Resolve(relativePath));
        source.Signer?.Sign(request, []);
        if (offset > 0 || rangeLast is not null) request.Headers.Range = new RangeHeaderValue(offset, rangeLast);

        using var headerTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        headerTimeout.CancelAfter(TimeSpan.FromSeconds(_settings.RequestTimeoutSeconds));
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headerTimeout.Token);

        if (rangeLast is not null && response.StatusCode is HttpStatusCode.OK or HttpStatusCode.PartialContent or HttpStatusCode.RequestedRangeNotSatisfiable
            && (response.StatusCode != HttpStatusCode.PartialContent || response.Content.Headers.ContentRange is not { } cr || cr.From != offset || cr.To != rangeLast))
            throw new SourceFailedException($"HTTP {(int)response.StatusCode} with Content-Range '{response.Content.Headers.ContentRange}' for bytes {offset}-{rangeLast} of '{relativePath}' (the source must serve byte ranges)");
        switch (response.StatusCode)
        {
            case HttpStatusCode.TooManyRequests:
                throw new SourceFailedException("HTTP 429", RetryAfterOf(response) ?? TimeSpan.FromMilliseconds(_settings.BackoffBaseMilliseconds)) { Throttled = true };
            case HttpStatusCode.ServiceUnavailable:
                throw new SourceFailedException($"HTTP {(int)response.StatusCode}", RetryAfterOf(response) ?? TimeSpan.FromMilliseconds(_settings.BackoffBaseMilliseconds));
            case HttpStatusCode.RequestedRangeNotSatisfiable:
                sink.SetLength(0);
                throw new SourceFailedException("HTTP 416 for a resume; restarting the chunk from the beginning");
            case HttpStatusCode.PartialContent:
                if ((offset == 0 && rangeLast is null) || response.Content.Headers.ContentRange?.From != offset)
                    throw new SourceFailedException($"HTTP 206 with Content-Range '{response.Content.Headers.ContentRange}' does not continue at byte {offset}");
                break;
            case HttpStatusCode.OK:
                if (offset > 0)
                {
                    sink.SetLength(0);
                    sink.Seek(0, SeekOrigin.Begin);
                    offset = 0;
                }
                break;
            default:
                throw new SourceFailedException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        }

        var contentLength = response.Content.Headers.ContentLength;
        if (contentLength is { } cl && offset + cl > limit)
            throw new SourceFailedException($"response for '{relativePath}' declares {offset + cl} bytes, more than the {limit} expected; refused");
        // A large manifest grown by doubling would leave about twice its size behind as garbage.
        if (sink is MemoryStream memory && contentLength is { } declaredLength && offset + declaredLength > memory.Capacity)
            memory.Capacity = (int)(offset + declaredLength);

        await using var body = await response.Content.ReadAsStreamAsync(ct);
        // Pooled: a download runs per chunk, so a fresh buffer each time would be most of what the agent allocates.
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            return await ReceiveAsync(body, buffer, sink, relativePath, offset, limit, contentLength, chargeGrant, ct);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<long> ReceiveAsync(Stream body, byte[] buffer, Stream sink, string relativePath, long offset, long limit, long? contentLength,
        bool chargeGrant, CancellationToken ct)
    {
        var total = offset;
        long received = 0;
        var window = TimeSpan.FromSeconds(_settings.MinRateWindowSeconds);
        // The floor is the agent's own setting, never derived from the grant: a source handing out a tiny grant must not
        // thereby license itself to trickle. Our own grant pacing must still never look like a slow server, so the time
        // spent waiting for the limiter is left out of the window the rate is measured over.
        var minRate = _settings.MinBytesPerSecond;
        var minPerWindow = (long)(minRate * _settings.MinRateWindowSeconds);
        var windowStart = Stopwatch.GetTimestamp();
        var pacedInWindow = TimeSpan.Zero;
        long windowBytes = 0;
        while (true)
        {
            int n;
            try
            {
                // A fresh deadline per read: "stalled" means no byte for two windows, never our own grant pacing.
                using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
                stall.CancelAfter(window * 2);
                n = await body.ReadAsync(buffer, stall.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new SourceFailedException($"no data for {window.TotalSeconds * 2:0.#}s (slower than the minimum rate); aborted at byte {total}");
            }
            if (n == 0) break;
            received += n;
            total += n;
            windowBytes += n;
            Interlocked.Add(ref _bytesReceived, n);
            Counter?.Add(n);
            if (total > limit)
                throw new SourceFailedException($"response for '{relativePath}' exceeds the {limit} bytes expected (endless data?); aborted");
            if (contentLength is { } declared && received > declared)
                throw new SourceFailedException($"response is longer than its Content-Length {declared}; aborted");
            await sink.WriteAsync(buffer.AsMemory(0, n), ct);
            if (chargeGrant)
            {
                var pacingStart = Stopwatch.GetTimestamp();
                await _limiter.AcquireAsync(n, ct);
                pacedInWindow += Stopwatch.GetElapsedTime(pacingStart);
            }
            if (Stopwatch.GetElapsedTime(windowStart) - pacedInWindow >= window)
            {
                if (minPerWindow > 0 && windowBytes < minPerWindow)
                    throw new SourceFailedException($"{windowBytes} bytes in {window.TotalSeconds:0.#}s is below the minimum rate of {minRate} B/s; aborted at byte {total}");
                windowStart = Stopwatch.GetTimestamp();
                pacedInWindow = TimeSpan.Zero;
                windowBytes = 0;
            }
        }
        return total;
    }

    private static TimeSpan? RetryAfterOf(HttpResponseMessage response)
    {
        var ra = response.Headers.RetryAfter;
        if (ra is null) return null;
        if (ra.Delta is { } delta) return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        if (ra.Date is { } date) { var d = date - DateTimeOffset.UtcNow; return d < TimeSpan.Zero ? TimeSpan.Zero : d; }
        return null;
    }
}

/// <summary>One source failed one request; the downloader moves to the next source.</summary>
internal sealed class SourceFailedException(string message, TimeSpan? retryAfter = null) : Exception(message)
{
    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>The source answered, but with content that failed verification.</summary>
    public bool Rejected { get; init; }

    /// <summary>The source answered 429: it is pacing the device, which is never a failure.</summary>
    public bool Throttled { get; init; }
}

/// <summary>Thrown by a verification callback: the bytes a source served are not acceptable.</summary>
public sealed class ContentRejectedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Every source failed a request for several rounds; the session reports it and retries later.</summary>
public sealed class DownloadFailedException(string relativePath, IReadOnlyList<string> failures)
    : Exception($"could not download '{relativePath}' from any source: {string.Join("; ", failures)}")
{
    /// <summary>The store path that could not be fetched.</summary>
    public string RelativePath { get; } = relativePath;

    /// <summary>True when at least one source served content that failed verification (a verify-stage failure, not a network one).</summary>
    public bool ContentRejected { get; init; }
}
