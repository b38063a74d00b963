using Orchestrator.Messages.Budgets;

namespace Orchestrator.ChunkStore.Throttling;

/// <summary>Outcome of a lease request against one <see cref="BudgetBucket"/>.</summary>
/// <param name="Granted">Bytes taken (0 when refused).</param>
/// <param name="RetryAfter">When refused: how long until the needed bytes are there (or the window ends).</param>
/// <param name="WindowRefused">When refused: the window, not the rate, is what ran out.</param>
public readonly record struct LeaseOutcome(long Granted, TimeSpan RetryAfter, bool WindowRefused)
{
    /// <summary>True when bytes were granted.</summary>
    public bool Allowed => Granted > 0;
}

/// <summary>
/// The arithmetic of one cluster-wide budget (kept by one budget entity): a token bucket (capacity = burst, refill =
/// rate) and, for devices, a byte cap per window. Every byte a gateway may send is leased from here first, so the bytes
/// sent cluster-wide never exceed burst + rate x elapsed, however many gateways spend leases; a lease larger than the
/// capacity is admitted from a full bucket and leaves it in debt, so one large object is paced, never refused forever.
/// Not thread-safe: its entity is its only user.
/// </summary>
public sealed class BudgetBucket
{
    private double _tokens;
    private long _lastTicks;

    /// <summary>Creates a full bucket with no window started.</summary>
    public BudgetBucket(BudgetLimits limits, DateTimeOffset now)
    {
        Limits = limits;
        _tokens = limits.BurstBytes;
        _lastTicks = now.UtcTicks;
    }

    /// <summary>The limits in force.</summary>
    public BudgetLimits Limits { get; private set; }

    /// <summary>End of the current window (device budgets); <see cref="DateTimeOffset.MinValue"/> before the first one.</summary>
    public DateTimeOffset WindowEnd { get; private set; } = DateTimeOffset.MinValue;

    /// <summary>Bytes leased (and not given back) in the current window.</summary>
    public long UsedInWindow { get; private set; }

    /// <summary>Tokens in the bucket now (negative: debt).</summary>
    public double Tokens(DateTimeOffset now)
    {
        Refill(now);
        return _tokens;
    }

    /// <summary>
    /// Adopts other limits without refilling: the tokens stay (capped to the new capacity), so a gateway configured
    /// differently never hands the cluster a free burst.
    /// </summary>
    public void Adopt(BudgetLimits limits, DateTimeOffset now)
    {
        if (limits == Limits) return;
        Refill(now);
        Limits = limits;
        _tokens = Math.Min(_tokens, limits.BurstBytes);
    }

    /// <summary>Starts a new window when the current one has ended (device budgets; called at check-in and on every lease).</summary>
    public void RollWindow(DateTimeOffset now)
    {
        if (!Limits.HasWindow || now < WindowEnd) return;
        WindowEnd = now + TimeSpan.FromMilliseconds(Limits.WindowMilliseconds);
        UsedInWindow = 0;
    }

    /// <summary>Bytes left in the current window (<see cref="long.MaxValue"/> when there is no window).</summary>
    public long RemainingInWindow(DateTimeOffset now)
    {
        if (!Limits.HasWindow) return long.MaxValue;
        RollWindow(now);
        return Math.Max(0, Limits.MaxBytesPerWindow - UsedInWindow);
    }

    /// <summary>
    /// Leases at least <paramref name="need"/> and at most <paramref name="want"/> bytes: granted when the bucket holds
    /// min(need, capacity) tokens and the window has room for <paramref name="need"/>; the grant is then what the bucket
    /// and the window hold, between need and want. Refused leases take nothing.
    /// </summary>
    public LeaseOutcome Lease(long need, long want, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(need);
        ArgumentOutOfRangeException.ThrowIfLessThan(want, need);
        Refill(now);
        var windowLeft = RemainingInWindow(now);
        if (need > windowLeft) return new LeaseOutcome(0, WindowEnd - now, WindowRefused: true);
        var admit = Math.Min(need, Limits.BurstBytes);
        if (_tokens < admit) return new LeaseOutcome(0, TimeSpan.FromSeconds((admit - _tokens) / Limits.BytesPerSecond), WindowRefused: false);
        var granted = Math.Max(need, Math.Min(want, (long)Math.Floor(_tokens)));
        granted = Math.Min(granted, windowLeft);
        _tokens -= granted;
        if (Limits.HasWindow) UsedInWindow += granted;
        return new LeaseOutcome(granted, TimeSpan.Zero, WindowRefused: false);
    }

    /// <summary>
    /// Takes back unspent bytes of a lease: into the bucket (never above its capacity) and, when the lease was charged to
    /// the current window (<paramref name="leaseWindowEnd"/>), out of that window's use.
    /// </summary>
    public void Return(long bytes, DateTimeOffset? leaseWindowEnd, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        Refill(now);
        _tokens = Math.Min(Limits.BurstBytes, _tokens + bytes);
        if (Limits.HasWindow && leaseWindowEnd == WindowEnd && now < WindowEnd) UsedInWindow = Math.Max(0, UsedInWindow - bytes);
    }

    /// <summary>
    /// True when forgetting this budget loses nothing: the bucket is full and no window use is running. A fresh bucket
    /// is then the same budget.
    /// </summary>
    public bool IsAtRest(DateTimeOffset now)
    {
        Refill(now);
        return _tokens >= Limits.BurstBytes && (!Limits.HasWindow || now >= WindowEnd || UsedInWindow == 0);
    }

    private void Refill(DateTimeOffset now)
    {
        var elapsed = (now.UtcTicks - _lastTicks) / (double)TimeSpan.TicksPerSecond;
        if (elapsed <= 0) return;
        _tokens = Math.Min(Limits.BurstBytes, _tokens + elapsed * Limits.BytesPerSecond);
        _lastTicks = now.UtcTicks;
    }
}
