namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Keeps all downloads of a session under the grant's bytes-per-second (token bucket with one second of burst)
/// and under the grant's total byte allowance.
/// </summary>
public sealed class GrantLimiter
{
    private readonly long _bytesPerSecond;
    private readonly long _maxBytes;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private double _tokens;
    private long _lastTicks;
    private long _spent;
    private readonly DateTimeOffset? _expires;

    /// <summary>Creates a limiter; <paramref name="bytesPerSecond"/> or <paramref name="maxBytes"/> &lt;= 0 means unlimited.</summary>
    /// <param name="bytesPerSecond">Rate cap.</param>
    /// <param name="maxBytes">Total bytes allowed.</param>
    /// <param name="time">Clock.</param>
    /// <param name="expiresUtc">After this instant the grant is void and the agent must check in again.</param>
    public GrantLimiter(long bytesPerSecond, long maxBytes, TimeProvider? time = null, DateTimeOffset? expiresUtc = null)
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
    public static GrantLimiter Unlimited => new(0, 0);

    /// <summary>Bytes received so far under this grant.</summary>
    public long Spent => Interlocked.Read(ref _spent);

    /// <summary>Accounts for <paramref name="bytes"/> just received and waits as long as the rate requires.</summary>
    /// <exception cref="GrantExhaustedException">The session would exceed the grant's byte allowance.</exception>
    public async ValueTask AcquireAsync(int bytes, CancellationToken ct)
    {
        var spent = Interlocked.Add(ref _spent, bytes);
        if (_maxBytes > 0 && spent > _maxBytes)
            throw new GrantExhaustedException($"download grant of {_maxBytes} bytes is used up; checking in again for a fresh grant");
        if (_expires is { } exp && _time.GetUtcNow() > exp)
            throw new GrantExhaustedException($"download grant expired at {exp:O}; checking in again for a fresh grant");
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

/// <summary>The download grant's byte allowance is used up; the agent checks in again for a fresh grant.</summary>
public sealed class GrantExhaustedException(string message) : Exception(message);
