namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Keeps all downloads of a session under the grant's bytes-per-second (token bucket with one second of burst)
/// and under the grant's total byte allowance.
/// </summary>
public sealed class GrantLimiter
{
    private readonly long _bytesPerSecond;
    private readonly long? _maxBytes;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private double _tokens;
    private long _lastTicks;
    private long _spent;
    private readonly DateTimeOffset? _expires;

    /// <summary>Creates a limiter.</summary>
    /// <param name="bytesPerSecond">Rate cap; 0 or less means no rate cap.</param>
    /// <param name="maxBytes">Total bytes allowed (0 = nothing left in this window); null means no cap.</param>
    /// <param name="time">Clock.</param>
    /// <param name="expiresUtc">After this instant the grant is void and the agent must check in again.</param>
    public GrantLimiter(long bytesPerSecond, long? maxBytes, TimeProvider? time = null, DateTimeOffset? expiresUtc = null)
    {
        _bytesPerSecond = bytesPerSecond;
        _maxBytes = maxBytes;
        _expires = expiresUtc;
        _time = time ?? TimeProvider.System;
        _tokens = bytesPerSecond;
        _lastTicks = _time.GetTimestamp();
    }

    /// <summary>Rate cap in bytes per second; 0 = none.</summary>
    public long BytesPerSecond => _bytesPerSecond;

    /// <summary>No limits (mirror-only runs without a grant).</summary>
    public static GrantLimiter Unlimited => new(0, null);

    /// <summary>
    /// The grant for a session, its rate raised to at least <paramref name="floorBytesPerSecond"/>: pacing below the
    /// agent's minimum-rate floor would hide a trickling source behind the agent's own waiting, so a tiny grant could
    /// hold a device for hours. The gateway still enforces its real limit with 429, which is pacing and never a failure.
    /// </summary>
    public static GrantLimiter For(Orchestrator.Messages.Protocol.DownloadGrant grant, TimeProvider time, long floorBytesPerSecond = 0) =>
        new(grant.BytesPerSecond > 0 ? Math.Max(grant.BytesPerSecond, floorBytesPerSecond) : 0, Math.Max(0, grant.MaxBytes), time, grant.ExpiresUtc);

    /// <summary>True when the grant allows no more bytes (so there is no point in asking for any).</summary>
    public bool Exhausted => _maxBytes is { } max && Spent >= max;

    /// <summary>When a fresh grant can be expected (the window end), if known.</summary>
    public DateTimeOffset? RenewsAt => _expires;

    /// <summary>Bytes received so far under this grant.</summary>
    public long Spent => Interlocked.Read(ref _spent);

    /// <summary>Bytes the grant still allows this session; null when it sets no byte limit.</summary>
    public long? Remaining => _maxBytes is { } max ? Math.Max(0, max - Spent) : null;

    /// <summary>Accounts for <paramref name="bytes"/> just received and waits as long as the rate requires.</summary>
    /// <exception cref="GrantExhaustedException">The session would exceed the grant's byte allowance.</exception>
    public async ValueTask AcquireAsync(int bytes, CancellationToken ct)
    {
        var spent = Interlocked.Add(ref _spent, bytes);
        if (_maxBytes is { } max && spent > max)
            throw new GrantExhaustedException($"download grant of {max} bytes is used up; checking in again when it renews", _expires);
        if (_expires is { } exp && _time.GetUtcNow() > exp)
            throw new GrantExhaustedException($"download grant expired at {exp:O}; checking in again for a fresh grant", null);
        if (_bytesPerSecond <= 0) return;
        TimeSpan wait;
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            _tokens = Math.Min(_bytesPerSecond, _tokens + _time.GetElapsedTime(_lastTicks, now).TotalSeconds * _bytesPerSecond);
            _lastTicks = now;
            _tokens -= bytes;
            wait = _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / _bytesPerSecond);
        }
        if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, ct);
    }
}

/// <summary>
/// The download grant's byte allowance is used up (or the grant expired). Not a failure of the device: the agent
/// keeps what it fetched, waits for the window to renew and checks in again.
/// </summary>
/// <param name="message">What ran out.</param>
/// <param name="renewsAt">When a fresh allowance can be expected, if known.</param>
public sealed class GrantExhaustedException(string message, DateTimeOffset? renewsAt) : Exception(message)
{
    /// <summary>When a fresh allowance can be expected, if known.</summary>
    public DateTimeOffset? RenewsAt { get; } = renewsAt;
}
