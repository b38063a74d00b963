using Akka.Actor;
using Orchestrator.Messages.Budgets;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Throttling;

/// <summary>Outcome of asking to send bytes to a device.</summary>
/// <param name="Allowed">True when the bytes may be sent now.</param>
/// <param name="RetryAfter">When refused: how long the device must wait (the Retry-After header).</param>
/// <param name="Reason">When refused: which limit, for the error body and metrics (device-rate, device-window, rollout-rate, global).</param>
public readonly record struct ThrottleDecision(bool Allowed, TimeSpan RetryAfter, string? Reason);

/// <summary>The budget entities did not answer in time; the request is neither admitted nor refused.</summary>
public sealed class BudgetUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A gateway's side of the cluster-wide download budgets (<c>BudgetActor</c> entities: one per device, one per capped
/// rollout, one global). Each chunk GET is charged exactly its bytes against the device's budget, its capped rollout's
/// budget and the global budget, in that order; a refusal charges nothing and carries the Retry-After the refusing
/// budget computed from its cluster-wide bucket.
/// <para>
/// Charges are paid from <em>leases</em>: bytes this gateway took from a budget entity beforehand and spends locally,
/// so a request costs a cluster round trip only when the lease of one of its budgets is used up. A lease asks for the
/// request's bytes plus room for more (at least 4 x the request, or 2 x what this gateway spent under the last lease
/// of that budget), never more than the budget refills in <see cref="DownloadThrottleOptions.LeaseDuration"/> nor
/// its burst; it expires after that duration and its unspent bytes go back to the entity. Every byte sent was taken
/// from a cluster-wide bucket first, so the cluster sends at most burst + rate x time per budget however many
/// gateways serve a device; what leases cost is utilisation (bytes parked at one gateway for at most one lease
/// duration are not available to another), never overshoot.
/// </para>
/// </summary>
public sealed class DownloadThrottle : IDisposable
{
    private readonly DownloadThrottleOptions _options;
    private readonly TimeProvider _clock;
    private readonly Func<CancellationToken, Task<IActorRef>> _region;
    private readonly TimeSpan _askTimeout;
    private readonly string _gateway;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Lease> _leases = new(StringComparer.Ordinal);
    private readonly ITimer _sweeper;
    private IActorRef? _regionRef;

    /// <summary>Default smallest burst of a rollout bucket: one chunk of the default chunker bound must fit even under a tiny cap.</summary>
    public const long DefaultMinRolloutBurstBytes = 256 * 1024 + 64;

    /// <summary>Smallest burst of a rollout bucket: the largest object a device may fetch, so even a tiny cap paces rather than starves.</summary>
    public long MinRolloutBurstBytes { get; init; } = DefaultMinRolloutBurstBytes;

    // This gateway's part of one budget. Guarded by _gate.
    private sealed class Lease
    {
        public long Remaining;
        public DateTimeOffset Expires;
        public DateTimeOffset? WindowEnd;
        public long SpentSinceLease;
        public long SpentUnderLastLease;
        public DateTimeOffset LastUse;
        // Device budgets: the capped rollout the device's downloads also count against, as of the last lease.
        public string? RolloutId;
        public long RolloutBytesPerSecond;
        // After a refusal: until then a request this lease cannot pay is refused here, without asking the entity again.
        public DateTimeOffset DeniedUntil;
        public string? DeniedReason;
    }

    /// <summary>Creates the throttle; options must be valid (see <see cref="DownloadThrottleOptions.Validate"/>).</summary>
    /// <param name="options">Limits.</param>
    /// <param name="clock">Clock.</param>
    /// <param name="region">The budget shard region (or its proxy), resolved on first use.</param>
    /// <param name="gateway">This gateway's name in lease requests (its cluster address).</param>
    /// <param name="askTimeout">How long to wait for a budget entity.</param>
    public DownloadThrottle(DownloadThrottleOptions options, TimeProvider clock, Func<CancellationToken, Task<IActorRef>> region, string gateway, TimeSpan askTimeout)
    {
        var problems = options.Validate().ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join(" ", problems), nameof(options));
        _options = options;
        _clock = clock;
        _region = region;
        _gateway = gateway;
        _askTimeout = askTimeout;
        // Unspent leases go back when they expire, so a device that moves to another gateway finds its bytes there.
        _sweeper = clock.CreateTimer(_ => Sweep(), null, options.LeaseDuration / 2, options.LeaseDuration / 2);
    }

    /// <summary>Devices with a live lease on this gateway (for metrics).</summary>
    public int TrackedDevices
    {
        get { lock (_gate) return _leases.Count(kv => kv.Key.StartsWith(BudgetIds.DevicePrefix, StringComparison.Ordinal)); }
    }

    /// <summary>Budgets (device, rollout, global) this gateway holds a lease of (for metrics).</summary>
    public int LiveLeases
    {
        get { lock (_gate) return _leases.Count; }
    }

    private BudgetLimits DeviceLimits => new(_options.DeviceBurstBytes, _options.DeviceBytesPerSecond, _options.DeviceMaxBytesPerWindow, (long)_options.GrantWindow.TotalMilliseconds);
    private BudgetLimits GlobalLimits => new(_options.GlobalBurstBytes, _options.GlobalBytesPerSecond);
    private BudgetLimits RolloutLimits(long cap) => new(Math.Max(cap, MinRolloutBurstBytes), cap);

    /// <summary>
    /// The grant of a device's session (called at check-in when there is work): records which capped rollout (if any)
    /// its downloads now count against (null or a cap of 0: none) and reads what is left of its cluster-wide window. A
    /// device still inside its window keeps it (checking in again does not reset what it has used).
    /// </summary>
    /// <exception cref="BudgetUnavailableException">The device's budget entity did not answer in time.</exception>
    public async Task<DownloadGrant> OpenAsync(string deviceId, string? rolloutId, long rolloutBytesPerSecond, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rolloutBytesPerSecond);
        var key = BudgetIds.Device(deviceId);
        // This gateway's unspent lease goes back first, so the grant counts only bytes sent (or parked at another
        // gateway for at most one lease duration) as used.
        await EnsureRegionAsync(ct).ConfigureAwait(false);
        lock (_gate)
        {
            if (_leases.TryGetValue(key, out var held) && held.Remaining > 0) GiveBack(key, held);
        }
        var answer = await AskAsync(new OpenDeviceBudget(deviceId, rolloutId, rolloutBytesPerSecond, DeviceLimits), ct).ConfigureAwait(false);
        var opened = answer as DeviceBudgetOpened ?? throw new BudgetUnavailableException($"The budget of device '{deviceId}' answered {answer.GetType().Name}.");
        lock (_gate)
        {
            // A lease taken before this check-in may name another rollout: the membership just recorded wins.
            if (_leases.TryGetValue(key, out var lease))
            {
                lease.RolloutId = rolloutBytesPerSecond > 0 ? rolloutId : null;
                lease.RolloutBytesPerSecond = lease.RolloutId is null ? 0 : rolloutBytesPerSecond;
            }
        }
        return new DownloadGrant(opened.RemainingInWindow, opened.BytesPerSecond, opened.WindowEnd);
    }

    /// <summary>Asks to send <paramref name="bytes"/> to the device now; on success the bytes are charged to every budget it counts against.</summary>
    /// <exception cref="BudgetUnavailableException">A budget entity did not answer in time (nothing was charged).</exception>
    public async ValueTask<ThrottleDecision> TryConsumeAsync(string deviceId, long bytes, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return new ThrottleDecision(true, TimeSpan.Zero, null);
        var device = BudgetIds.Device(deviceId);
        var refusal = await ReserveAsync(device, DeviceLimits, bytes, ct).ConfigureAwait(false);
        if (refusal is not null) return refusal.Value;
        List<string> taken = [device];
        try
        {
            string? rollout = null;
            long cap = 0;
            lock (_gate)
            {
                if (_leases.TryGetValue(device, out var lease) && lease.RolloutId is { } r && lease.RolloutBytesPerSecond > 0)
                {
                    rollout = BudgetIds.Rollout(r);
                    cap = lease.RolloutBytesPerSecond;
                }
            }
            if (rollout is not null)
            {
                refusal = await ReserveAsync(rollout, RolloutLimits(cap), bytes, ct).ConfigureAwait(false);
                if (refusal is not null) return refusal.Value;
                taken.Add(rollout);
            }
            refusal = await ReserveAsync(BudgetIds.Global, GlobalLimits, bytes, ct).ConfigureAwait(false);
            if (refusal is not null) return refusal.Value;
            taken.Clear();
            return new ThrottleDecision(true, TimeSpan.Zero, null);
        }
        finally
        {
            // Refused or failed further down: what was taken goes back into this gateway's leases (charged nothing).
            foreach (var id in taken) Unreserve(id, bytes);
        }
    }

    // Takes the bytes from this gateway's lease of the budget, leasing more from the entity when it falls short.
    // Returns null when taken, else the refusal (nothing taken).
    private async ValueTask<ThrottleDecision?> ReserveAsync(string budgetId, BudgetLimits limits, long bytes, CancellationToken ct)
    {
        long fromLease;
        long need;
        long want;
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            var lease = Get(budgetId, now);
            if (lease.Remaining >= bytes)
            {
                lease.Remaining -= bytes;
                lease.SpentSinceLease += bytes;
                return null;
            }
            // Refused a moment ago: until the time the entity named, a request this lease cannot pay is refused here
            // (paced, at worst a little longer than needed when another gateway gives bytes back early), so a greedy
            // device costs one round trip per refusal period, not one per request.
            if (now < lease.DeniedUntil)
                return new ThrottleDecision(false, Ceil(lease.DeniedUntil - now), lease.DeniedReason);
            // Use what is left and lease the rest; the lease is this request's until the entity answers.
            fromLease = lease.Remaining;
            lease.Remaining = 0;
            need = bytes - fromLease;
            var quantum = Math.Max(1, Math.Min(limits.BurstBytes, (long)(limits.BytesPerSecond * _options.LeaseDuration.TotalSeconds)));
            want = Math.Max(need, Math.Min(quantum, Math.Max(4 * bytes, 2 * Math.Max(lease.SpentSinceLease, lease.SpentUnderLastLease))));
        }
        object answer;
        try
        {
            answer = await AskAsync(new LeaseBudget(budgetId, _gateway, need, want, limits), ct).ConfigureAwait(false);
        }
        catch
        {
            Unreserve(budgetId, fromLease, spent: false);
            throw;
        }
        now = _clock.GetUtcNow();
        lock (_gate)
        {
            var lease = Get(budgetId, now);
            switch (answer)
            {
                case BudgetLeased leased:
                    lease.Remaining += leased.Bytes - need;
                    lease.Expires = now + _options.LeaseDuration;
                    lease.WindowEnd = leased.WindowEnd;
                    lease.SpentUnderLastLease = lease.SpentSinceLease + bytes;
                    lease.SpentSinceLease = 0;
                    if (budgetId.StartsWith(BudgetIds.DevicePrefix, StringComparison.Ordinal))
                    {
                        lease.RolloutId = leased.RolloutId;
                        lease.RolloutBytesPerSecond = leased.RolloutBytesPerSecond;
                    }
                    return null;
                case BudgetDenied denied:
                    lease.Remaining += fromLease;
                    lease.DeniedUntil = now + TimeSpan.FromMilliseconds(denied.RetryAfterMs);
                    lease.DeniedReason = denied.Reason;
                    return new ThrottleDecision(false, Ceil(TimeSpan.FromMilliseconds(denied.RetryAfterMs)), denied.Reason);
                default:
                    lease.Remaining += fromLease;
                    throw new BudgetUnavailableException($"The budget '{budgetId}' answered {answer.GetType().Name}.");
            }
        }
    }

    // Puts bytes taken for a request that was then refused (or failed) back into this gateway's lease.
    private void Unreserve(string budgetId, long bytes, bool spent = true)
    {
        if (bytes <= 0) return;
        lock (_gate)
        {
            var lease = Get(budgetId, _clock.GetUtcNow());
            lease.Remaining += bytes;
            if (spent) lease.SpentSinceLease = Math.Max(0, lease.SpentSinceLease - bytes);
        }
    }

    // Caller holds _gate. An expired lease's unspent bytes go back to the entity before the lease is used again.
    private Lease Get(string budgetId, DateTimeOffset now)
    {
        if (!_leases.TryGetValue(budgetId, out var lease))
        {
            lease = new Lease { Expires = now };
            _leases[budgetId] = lease;
        }
        if (now >= lease.Expires && lease.Remaining > 0) GiveBack(budgetId, lease);
        lease.LastUse = now;
        return lease;
    }

    // Caller holds _gate.
    private void GiveBack(string budgetId, Lease lease)
    {
        var bytes = lease.Remaining;
        lease.Remaining = 0;
        if (_regionRef is { } region) region.Tell(new ReturnBudget(budgetId, bytes, lease.WindowEnd));
    }

    private void Sweep()
    {
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            List<string>? idle = null;
            foreach (var (id, lease) in _leases)
            {
                if (now < lease.Expires) continue;
                if (lease.Remaining > 0) GiveBack(id, lease);
                // A budget untouched for many lease durations holds nothing here any more; its rollout membership is
                // the entity's to keep.
                else if (now - lease.LastUse > _options.LeaseDuration * 20) (idle ??= []).Add(id);
            }
            if (idle is not null) foreach (var id in idle) _leases.Remove(id);
        }
    }

    private async Task<object> AskAsync(object message, CancellationToken ct)
    {
        try
        {
            var region = await EnsureRegionAsync(ct).ConfigureAwait(false);
            return await region.Ask<object>(message, _askTimeout, ct).ConfigureAwait(false);
        }
        catch (AskTimeoutException ex)
        {
            throw new BudgetUnavailableException($"The download budgets did not answer within {_askTimeout.TotalSeconds:0.#} s.", ex);
        }
    }

    private async ValueTask<IActorRef> EnsureRegionAsync(CancellationToken ct) => _regionRef ??= await _region(ct).ConfigureAwait(false);

    // Retry-After is whole seconds; round up so an obedient client is admitted on its retry.
    private static TimeSpan Ceil(TimeSpan t) => TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(t.TotalSeconds)));

    /// <summary>Stops the sweeper and gives every unspent lease back.</summary>
    public void Dispose()
    {
        _sweeper.Dispose();
        lock (_gate)
        {
            foreach (var (id, lease) in _leases)
                if (lease.Remaining > 0) GiveBack(id, lease);
            _leases.Clear();
        }
    }
}
