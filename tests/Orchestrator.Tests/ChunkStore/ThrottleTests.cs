using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.ChunkStore;

public sealed class ThrottleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Token_bucket_refills_at_its_rate_and_reports_the_wait()
    {
        var bucket = new TokenBucket(1000, 100, T0);
        Assert.True(bucket.TryTake(1000, T0, out _));
        Assert.False(bucket.TryTake(500, T0, out var wait));
        Assert.Equal(5, wait.TotalSeconds, 3);
        Assert.True(bucket.TryTake(500, T0.AddSeconds(5), out _));
    }

    [Fact]
    public void Request_larger_than_capacity_is_admitted_from_a_full_bucket_and_leaves_debt()
    {
        var bucket = new TokenBucket(1000, 100, T0);
        Assert.True(bucket.TryTake(3000, T0, out _));
        Assert.False(bucket.TryTake(1, T0.AddSeconds(19), out var wait));
        Assert.True(wait > TimeSpan.Zero);
        Assert.True(bucket.TryTake(1, T0.AddSeconds(21), out _));
    }

    [Fact]
    public void Window_limit_refuses_until_the_window_ends_and_check_in_does_not_reset_it()
    {
        var clock = new ManualClock(T0);
        var throttle = new DownloadThrottle(new DownloadThrottleOptions
        {
            DeviceMaxBytesPerWindow = 1000, GrantWindow = TimeSpan.FromMinutes(10),
            DeviceBurstBytes = 10_000, DeviceBytesPerSecond = 10_000,
        }, clock);
        var grant = throttle.IssueGrant("d");
        Assert.Equal(1000, grant.MaxBytes);
        Assert.Equal(T0.AddMinutes(10), grant.ExpiresUtc);
        Assert.True(throttle.TryConsume("d", 800).Allowed);
        Assert.Equal(200, throttle.IssueGrant("d").MaxBytes);
        var refused = throttle.TryConsume("d", 300);
        Assert.False(refused.Allowed);
        Assert.Equal("device-window", refused.Reason);
        Assert.Equal(600, refused.RetryAfter.TotalSeconds);
        clock.Advance(TimeSpan.FromMinutes(10));
        Assert.True(throttle.TryConsume("d", 300).Allowed);
    }

    [Fact]
    public void Global_refusal_does_not_charge_the_device()
    {
        var clock = new ManualClock(T0);
        var throttle = new DownloadThrottle(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 1000, DeviceBytesPerSecond = 1,
            GlobalBurstBytes = 1000, GlobalBytesPerSecond = 100,
        }, clock);
        Assert.True(throttle.TryConsume("a", 1000).Allowed);
        var refused = throttle.TryConsume("b", 600);
        Assert.Equal("global", refused.Reason);
        Assert.Equal(6, refused.RetryAfter.TotalSeconds);
        clock.Advance(TimeSpan.FromSeconds(6));
        // b's own bucket was refunded: it is full, so only the global budget mattered.
        Assert.True(throttle.TryConsume("b", 600).Allowed);
    }

    [Fact]
    public void Devices_of_one_rollout_share_its_cap_and_a_device_of_no_rollout_is_unaffected()
    {
        var clock = new ManualClock(T0);
        // Devices hold 400 kB each and barely refill, so a device's own budget is observable; the global budget is ample.
        var throttle = new DownloadThrottle(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 400_000, DeviceBytesPerSecond = 1,
            GlobalBurstBytes = 100_000_000, GlobalBytesPerSecond = 100_000_000,
        }, clock);
        throttle.JoinRollout("d1", "r1", 300_000);
        throttle.JoinRollout("d2", "r1", 300_000);
        throttle.JoinRollout("d3", null, 0);
        Assert.Equal(1, throttle.TrackedRollouts);

        Assert.True(throttle.TryConsume("d1", 200_000).Allowed);
        Assert.True(throttle.TryConsume("d2", 100_000).Allowed); // the rollout's 300 kB burst is now spent
        var refused = throttle.TryConsume("d1", 150_000);
        Assert.Equal((false, "rollout-rate", 1.0), (refused.Allowed, refused.Reason, refused.RetryAfter.TotalSeconds));
        Assert.False(throttle.TryConsume("d2", 1).Allowed);

        // Not a member: unaffected by the spent rollout.
        Assert.True(throttle.TryConsume("d3", 400_000).Allowed);

        // One second refills the rollout by its cap; d1's own bucket was refunded on the refusal, so 200 kB fit.
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(throttle.TryConsume("d1", 200_000).Allowed);
        Assert.Equal("rollout-rate", throttle.TryConsume("d2", 150_000).Reason);

        // Leaving the rollout (e.g. the work is now a repair) removes the cap for that device.
        throttle.JoinRollout("d2", null, 0);
        Assert.True(throttle.TryConsume("d2", 150_000).Allowed);
    }

    [Fact]
    public void Grant_rate_is_the_lower_of_device_rate_and_rollout_cap_and_a_global_refusal_refunds_the_rollout()
    {
        var clock = new ManualClock(T0);
        var throttle = new DownloadThrottle(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 10_000_000, DeviceBytesPerSecond = 1_000_000,
            GlobalBurstBytes = 100_000, GlobalBytesPerSecond = 100_000,
        }, clock);
        Assert.Equal(1_000_000, throttle.IssueGrant("d1").BytesPerSecond);
        throttle.JoinRollout("d1", "slow", 50_000);
        Assert.Equal(50_000, throttle.IssueGrant("d1").BytesPerSecond);
        throttle.JoinRollout("d2", "fast", 5_000_000);
        Assert.Equal(1_000_000, throttle.IssueGrant("d2").BytesPerSecond);

        // d2 spends the global budget; d1's request is then refused globally, and its rollout charge is given back:
        // after one second (rollout +50 kB, global +100 kB) the rollout's full 256 KiB burst admits 250 kB.
        Assert.True(throttle.TryConsume("d2", 100_000).Allowed);
        Assert.Equal("global", throttle.TryConsume("d1", 200_000).Reason);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(throttle.TryConsume("d1", 250_000).Allowed);
        Assert.Equal("rollout-rate", throttle.TryConsume("d1", 100_000).Reason);
        Assert.Throws<ArgumentOutOfRangeException>(() => throttle.JoinRollout("d1", "slow", -1));
    }

    [Fact]
    public void Invalid_options_are_rejected_with_the_setting_named()
    {
        var ex = Assert.Throws<ArgumentException>(() => new DownloadThrottle(new DownloadThrottleOptions { DeviceBytesPerSecond = 0 }, TimeProvider.System));
        Assert.Contains("Throttle:DeviceBytesPerSecond", ex.Message);
    }
}
