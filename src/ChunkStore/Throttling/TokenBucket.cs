namespace Orchestrator.ChunkStore.Throttling;

/// <summary>
/// Byte-rate limiter: fills at <see cref="RatePerSecond"/> up to <see cref="Capacity"/>. A request larger than
/// the capacity is admitted when the bucket is full and leaves it in debt, so one large chunk cannot be refused
/// forever. Thread-safe.
/// </summary>
public sealed class TokenBucket
{
    private readonly object _gate = new();
    private double _tokens;
    private long _lastTicks;

    /// <summary>Creates a full bucket.</summary>
    public TokenBucket(long capacity, long ratePerSecond, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ratePerSecond);
        Capacity = capacity;
        RatePerSecond = ratePerSecond;
        _tokens = capacity;
        _lastTicks = now.UtcTicks;
    }

    /// <summary>Maximum burst in bytes.</summary>
    public long Capacity { get; }

    /// <summary>Refill rate in bytes per second.</summary>
    public long RatePerSecond { get; }

    /// <summary>
    /// Takes <paramref name="amount"/> tokens if available (nothing taken otherwise). On refusal,
    /// <paramref name="retryAfter"/> is how long until the request would be admitted.
    /// </summary>
    public bool TryTake(long amount, DateTimeOffset now, out TimeSpan retryAfter)
    {
        lock (_gate)
        {
            Refill(now);
            var needed = Math.Min(amount, Capacity);
            if (_tokens >= needed)
            {
                _tokens -= amount;
                retryAfter = TimeSpan.Zero;
                return true;
            }
            retryAfter = TimeSpan.FromSeconds((needed - _tokens) / RatePerSecond);
            return false;
        }
    }

    /// <summary>Gives back tokens taken for a request that was then refused elsewhere.</summary>
    public void Refund(long amount)
    {
        lock (_gate) _tokens = Math.Min(Capacity, _tokens + amount);
    }

    private void Refill(DateTimeOffset now)
    {
        var elapsed = (now.UtcTicks - _lastTicks) / (double)TimeSpan.TicksPerSecond;
        if (elapsed <= 0) return;
        _tokens = Math.Min(Capacity, _tokens + elapsed * RatePerSecond);
        _lastTicks = now.UtcTicks;
    }
}
