using System.Collections.Concurrent;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Throttling;

/// <summary>Outcome of asking to send bytes to a device.</summary>
/// <param name="Allowed">True when the bytes may be sent now.</param>
/// <param name="RetryAfter">When refused: how long the device must wait (the Retry-After header).</param>
/// <param name="Reason">When refused: which limit, for the error body and metrics (device-rate, device-window, global).</param>
public readonly record struct ThrottleDecision(bool Allowed, TimeSpan RetryAfter, string? Reason);

/// <summary>
/// Per-device download grants (bytes per window + rate) and a global egress budget for one gateway node.
/// A grant is issued at check-in; chunk downloads consume it. State is per node: with several gateways a device's
/// budget is enforced per gateway it talks to, and the agent also paces itself by the grant it received.
/// </summary>
public sealed class DownloadThrottle
{
    private readonly DownloadThrottleOptions _options;
    private readonly TimeProvider _clock;
    private readonly TokenBucket _global;
    private readonly ConcurrentDictionary<string, DeviceAllowance> _devices = new(StringComparer.Ordinal);
    private long _operations;

    private sealed class DeviceAllowance(TokenBucket rate, DateTimeOffset windowEnd)
    {
        public readonly object Gate = new();
        public TokenBucket Rate { get; } = rate;
        public DateTimeOffset WindowEnd { get; set; } = windowEnd;
        public long UsedInWindow { get; set; }
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
            return new DownloadGrant(remaining, _options.DeviceBytesPerSecond, allowance.WindowEnd);
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
            if (!_global.TryTake(bytes, now, out var globalWait))
            {
                allowance.Rate.Refund(bytes);
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

    private DeviceAllowance NewAllowance(DateTimeOffset now) =>
        new(new TokenBucket(_options.DeviceBurstBytes, _options.DeviceBytesPerSecond, now), now + _options.GrantWindow);

    // Devices whose window ended long ago hold a full bucket and nothing used: dropping them loses nothing.
    private void Prune(DateTimeOffset now)
    {
        foreach (var (id, allowance) in _devices)
        {
            if (now - allowance.WindowEnd > _options.GrantWindow) _devices.TryRemove(id, out _);
        }
    }

    // Retry-After is whole seconds; round up so an obedient client is admitted on its retry.
    private static TimeSpan Ceil(TimeSpan t) => TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(t.TotalSeconds)));
}
