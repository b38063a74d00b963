using System.Collections.Concurrent;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Throttling;

/// <summary>Outcome of asking to send bytes to a device.</summary>
/// <param name="Allowed">True when the bytes may be sent now.</param>
/// <param name="RetryAfter">When refused: how long the device must wait (the Retry-After header).</param>
/// <param name="Reason">When refused: which limit, for the error body and metrics (device-rate, device-window, rollout-rate, global).</param>
public readonly record struct ThrottleDecision(bool Allowed, TimeSpan RetryAfter, string? Reason);

/// <summary>
/// Per-device download grants (bytes per window + rate) and a global egress budget for one gateway node.
/// A grant is issued at check-in; chunk downloads consume it. State is per node: with several gateways a device's
/// budget is enforced per gateway it talks to, and the agent also paces itself by the grant it received.
/// A device doing a rollout's work with a bandwidth cap is also charged to that rollout's shared bucket
/// (<see cref="JoinRollout"/>), so all devices of the rollout together stay under the cap on this node.
/// </summary>
public sealed class DownloadThrottle
{
    private readonly DownloadThrottleOptions _options;
    private readonly TimeProvider _clock;
    private readonly TokenBucket _global;
    private readonly ConcurrentDictionary<string, DeviceAllowance> _devices = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TokenBucket> _rollouts = new(StringComparer.Ordinal);
    private long _operations;

    /// <summary>Default smallest burst of a rollout bucket: one chunk of the default chunker bound must fit even under a tiny cap.</summary>
    public const long DefaultMinRolloutBurstBytes = 256 * 1024 + 64;

    /// <summary>Smallest burst of a rollout bucket: the largest object a device may fetch, so even a tiny cap paces rather than starves.</summary>
    public long MinRolloutBurstBytes { get; init; } = DefaultMinRolloutBurstBytes;

    private sealed class DeviceAllowance(TokenBucket rate, DateTimeOffset windowEnd)
    {
        public readonly object Gate = new();
        public TokenBucket Rate { get; } = rate;
        public DateTimeOffset WindowEnd { get; set; } = windowEnd;
        public long UsedInWindow { get; set; }
        /// <summary>The capped rollout this device currently works for, if any.</summary>
        public TokenBucket? Rollout { get; set; }
    }

    /// <summary>Creates the throttle; options must be valid (see <see cref="DownloadThrottleOptions.Validate"/>).</summary>
    public DownloadThrottle(DownloadThrottleOptions options, TimeProvider clock)
    {
        var problems = options.Validate().ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join(" ", problems), nameof(options));
        _options = options;
        _clock = clock;
        _global = new TokenBucket(options.GlobalBurstBytes, options.GlobalBytesPerSecond, clock.GetUtcNow());
    }

    /// <summary>Devices with live allowance state (for metrics).</summary>
    public int TrackedDevices => _devices.Count;

    /// <summary>Capped rollouts with a live shared bucket on this node (for metrics).</summary>
    public int TrackedRollouts => _rollouts.Count;

    /// <summary>
    /// Records which capped rollout the device now works for (called at check-in, before <see cref="IssueGrant"/>).
    /// A null <paramref name="rolloutId"/> or a cap of 0 means no rollout cap applies, and removes any earlier
    /// membership. All devices of one rollout share one bucket: rate = cap, burst = max(cap, <see cref="MinRolloutBurstBytes"/>).
    /// </summary>
    public void JoinRollout(string deviceId, string? rolloutId, long bandwidthBytesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bandwidthBytesPerSecond);
        var now = _clock.GetUtcNow();
        var allowance = GetAllowance(deviceId, now);
        TokenBucket? bucket = null;
        if (rolloutId is not null && bandwidthBytesPerSecond > 0)
        {
            // A rollout's cap is fixed at creation; a different rate under the same id (a recreated rollout) replaces the bucket.
            bucket = _rollouts.AddOrUpdate(rolloutId,
                _ => NewRolloutBucket(bandwidthBytesPerSecond, now),
                (_, existing) => existing.RatePerSecond == bandwidthBytesPerSecond ? existing : NewRolloutBucket(bandwidthBytesPerSecond, now));
        }
        lock (allowance.Gate) allowance.Rollout = bucket;
    }

    /// <summary>
    /// The grant for a device's session. A device still inside its window keeps its window (checking in again does
    /// not reset what it has used); otherwise a fresh window starts.
    /// </summary>
    public DownloadGrant IssueGrant(string deviceId)
    {
        var now = _clock.GetUtcNow();
        var allowance = GetAllowance(deviceId, now);
        lock (allowance.Gate)
        {
            var remaining = Math.Max(0, _options.DeviceMaxBytesPerWindow - allowance.UsedInWindow);
            // The whole rollout may not exceed its cap, so neither may any one of its devices.
            var rate = allowance.Rollout is { } rollout ? Math.Min(_options.DeviceBytesPerSecond, rollout.RatePerSecond) : _options.DeviceBytesPerSecond;
            return new DownloadGrant(remaining, rate, allowance.WindowEnd);
        }
    }

    /// <summary>Asks to send <paramref name="bytes"/> to the device now; on success the bytes are charged.</summary>
    public ThrottleDecision TryConsume(string deviceId, long bytes)
    {
        var now = _clock.GetUtcNow();
        var allowance = GetAllowance(deviceId, now);
        lock (allowance.Gate)
        {
            if (allowance.UsedInWindow + bytes > _options.DeviceMaxBytesPerWindow)
            {
                return new ThrottleDecision(false, Ceil(allowance.WindowEnd - now), "device-window");
            }
            if (!allowance.Rate.TryTake(bytes, now, out var deviceWait))
            {
                return new ThrottleDecision(false, Ceil(deviceWait), "device-rate");
            }
            var rollout = allowance.Rollout;
            if (rollout is not null && !rollout.TryTake(bytes, now, out var rolloutWait))
            {
                allowance.Rate.Refund(bytes);
                return new ThrottleDecision(false, Ceil(rolloutWait), "rollout-rate");
            }
            if (!_global.TryTake(bytes, now, out var globalWait))
            {
                allowance.Rate.Refund(bytes);
                rollout?.Refund(bytes);
                return new ThrottleDecision(false, Ceil(globalWait), "global");
            }
            allowance.UsedInWindow += bytes;
            return new ThrottleDecision(true, TimeSpan.Zero, null);
        }
    }

    private DeviceAllowance GetAllowance(string deviceId, DateTimeOffset now)
    {
        if (Interlocked.Increment(ref _operations) % 4096 == 0) Prune(now);
        var allowance = _devices.GetOrAdd(deviceId, _ => NewAllowance(now));
        lock (allowance.Gate)
        {
            if (now >= allowance.WindowEnd)
            {
                allowance.WindowEnd = now + _options.GrantWindow;
                allowance.UsedInWindow = 0;
            }
        }
        return allowance;
    }

    private TokenBucket NewRolloutBucket(long bytesPerSecond, DateTimeOffset now) =>
        new(Math.Max(bytesPerSecond, MinRolloutBurstBytes), bytesPerSecond, now);

    private DeviceAllowance NewAllowance(DateTimeOffset now) =>
        new(new TokenBucket(_options.DeviceBurstBytes, _options.DeviceBytesPerSecond, now), now + _options.GrantWindow);

    // Devices whose window ended long ago hold a full bucket and nothing used: dropping them loses nothing (a device
    // that comes back checks in again, which re-joins its rollout). A rollout bucket no tracked device uses is idle,
    // hence full, and is dropped too. (A device joining concurrently may keep a dropped bucket for its session:
    // at worst that rollout gets one extra burst, never an unbounded rate.)
    private void Prune(DateTimeOffset now)
    {
        var inUse = new HashSet<TokenBucket>(ReferenceEqualityComparer.Instance);
        foreach (var (id, allowance) in _devices)
        {
            if (now - allowance.WindowEnd > _options.GrantWindow) _devices.TryRemove(id, out _);
            else if (allowance.Rollout is { } bucket) inUse.Add(bucket);
        }
        foreach (var (id, bucket) in _rollouts)
        {
            if (!inUse.Contains(bucket)) _rollouts.TryRemove(new KeyValuePair<string, TokenBucket>(id, bucket));
        }
    }

    // Retry-After is whole seconds; round up so an obedient client is admitted on its retry.
    private static TimeSpan Ceil(TimeSpan t) => TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(t.TotalSeconds)));
}
