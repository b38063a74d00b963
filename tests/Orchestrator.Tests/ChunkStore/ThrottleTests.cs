using Akka.Actor;
using Akka.Cluster.Sharding;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Messages.Budgets;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.ChunkStore;

/// <summary>
/// The gateway side of the cluster-wide budgets (<see cref="DownloadThrottle"/>) against real <see cref="BudgetActor"/>
/// entities (hosted by a local stand-in for the shard region), with a clock the test moves.
/// </summary>
public sealed class ThrottleTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ThrottleTests(Xunit.Abstractions.ITestOutputHelper output) : base(output: output) => _output = output;

    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly ManualClock _clock = new(T0);

    /// <summary>Routes budget messages to one <see cref="BudgetActor"/> per id (what the shard region does) and counts leases.</summary>
    private sealed class LocalBudgetRegion : ReceiveActor
    {
        public static Props Props(TimeProvider clock, Counter leases) => Akka.Actor.Props.Create(() => new LocalBudgetRegion(clock, leases));

        public LocalBudgetRegion(TimeProvider clock, Counter leases)
        {
            Receive<Passivate>(p => Sender.Tell(p.StopMessage));
            ReceiveAny(m =>
            {
                var id = ((IWithBudgetId)m).BudgetId;
                if (m is LeaseBudget) leases.Increment();
                var name = Uri.EscapeDataString(id);
                var child = Context.Child(name);
                if (child.IsNobody()) child = Context.ActorOf(BudgetActor.Props(id, TimeSpan.FromMinutes(2), clock), name);
                child.Forward(m);
            });
        }
    }

    private sealed class Counter
    {
        private int _value;
        public int Value => Volatile.Read(ref _value);
        public void Increment() => Interlocked.Increment(ref _value);
    }

    private readonly Counter _leases = new();
    private IActorRef? _region;

    private DownloadThrottle Gateway(DownloadThrottleOptions options, string name = "gw-1")
    {
        _region ??= Sys.ActorOf(LocalBudgetRegion.Props(_clock, _leases));
        var region = _region;
        return new DownloadThrottle(options, _clock, _ => Task.FromResult(region), name, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_lease_is_between_need_and_want_a_refusal_takes_nothing_and_names_the_wait()
    {
        var bucket = new BudgetBucket(new BudgetLimits(1000, 100), T0);
        Assert.Equal(600, bucket.Lease(200, 600, T0).Granted);
        // 400 left: want is cut to what the bucket holds, but never below need.
        Assert.Equal(400, bucket.Lease(300, 900, T0).Granted);
        var refused = bucket.Lease(250, 250, T0);
        Assert.False(refused.Allowed);
        Assert.Equal(2.5, refused.RetryAfter.TotalSeconds, 3);
        Assert.Equal(0, bucket.Tokens(T0), 3);
        // Unspent bytes come back (never above the capacity).
        bucket.Return(5000, null, T0);
        Assert.Equal(1000, bucket.Tokens(T0), 3);
        Assert.True(bucket.IsAtRest(T0));
    }

    [Fact]
    public void A_lease_larger_than_the_burst_is_admitted_from_a_full_bucket_and_leaves_debt()
    {
        var bucket = new BudgetBucket(new BudgetLimits(1000, 100), T0);
        Assert.Equal(3000, bucket.Lease(3000, 3000, T0).Granted);
        Assert.False(bucket.Lease(1, 1, T0.AddSeconds(19)).Allowed);
        Assert.True(bucket.Lease(1, 1, T0.AddSeconds(21)).Allowed);
    }

    [Fact]
    public void Other_limits_are_adopted_without_a_free_refill()
    {
        var bucket = new BudgetBucket(new BudgetLimits(1000, 100), T0);
        bucket.Lease(900, 900, T0);
        bucket.Adopt(new BudgetLimits(5000, 100), T0);
        Assert.Equal(100, bucket.Tokens(T0), 3);
        bucket.Adopt(new BudgetLimits(50, 100), T0);
        Assert.Equal(50, bucket.Tokens(T0), 3);
    }

    [Fact]
    public void A_window_return_refunds_only_the_window_it_was_charged_to()
    {
        var limits = new BudgetLimits(10_000, 10_000, 1000, 60_000);
        var bucket = new BudgetBucket(limits, T0);
        Assert.Equal(1000, bucket.Lease(100, 5000, T0).Granted); // capped by the window
        var window = bucket.WindowEnd;
        var refused = bucket.Lease(1, 1, T0);
        Assert.True(refused.WindowRefused);
        Assert.Equal(60, refused.RetryAfter.TotalSeconds, 3);
        bucket.Return(400, window, T0);
        Assert.Equal(400, bucket.RemainingInWindow(T0));
        Assert.False(bucket.IsAtRest(T0.AddSeconds(30))); // window use running: passivating would forget it
        // A return of the old window after it rolled over refunds the bucket only.
        var later = T0.AddMinutes(2);
        Assert.Equal(1000, bucket.Lease(1000, 1000, later).Granted);
        bucket.Return(300, window, later);
        Assert.Equal(0, bucket.RemainingInWindow(later));
    }

    [Fact]
    public async Task Window_limit_refuses_until_the_window_ends_and_check_in_does_not_reset_it()
    {
        using var throttle = Gateway(new DownloadThrottleOptions
        {
            DeviceMaxBytesPerWindow = 1000, GrantWindow = TimeSpan.FromMinutes(10),
            DeviceBurstBytes = 10_000, DeviceBytesPerSecond = 10_000,
        });
        var grant = await throttle.OpenAsync("d", null, 0, default);
        Assert.Equal(1000, grant.MaxBytes);
        Assert.Equal(T0.AddMinutes(10), grant.ExpiresUtc);
        Assert.True((await throttle.TryConsumeAsync("d", 800, default)).Allowed);
        // The lease took the whole window; checking in gives the unspent part back, so the grant counts what was sent.
        Assert.Equal(200, (await throttle.OpenAsync("d", null, 0, default)).MaxBytes);
        var refused = await throttle.TryConsumeAsync("d", 300, default);
        Assert.False(refused.Allowed);
        Assert.Equal("device-window", refused.Reason);
        Assert.Equal(600, refused.RetryAfter.TotalSeconds);
        _clock.Advance(TimeSpan.FromMinutes(10));
        Assert.True((await throttle.TryConsumeAsync("d", 300, default)).Allowed);
    }

    [Fact]
    public async Task Global_refusal_does_not_charge_the_device()
    {
        using var throttle = Gateway(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 1000, DeviceBytesPerSecond = 1,
            GlobalBurstBytes = 1000, GlobalBytesPerSecond = 100,
        });
        Assert.True((await throttle.TryConsumeAsync("a", 1000, default)).Allowed);
        var refused = await throttle.TryConsumeAsync("b", 600, default);
        Assert.Equal("global", refused.Reason);
        Assert.Equal(6, refused.RetryAfter.TotalSeconds);
        _clock.Advance(TimeSpan.FromSeconds(6));
        // b's device bytes stayed b's: only the global budget mattered.
        Assert.True((await throttle.TryConsumeAsync("b", 600, default)).Allowed);
    }

    [Fact]
    public async Task Devices_of_one_rollout_share_its_cap_and_a_device_of_no_rollout_is_unaffected()
    {
        // Devices hold 400 kB each and barely refill, so a device's own budget is observable; the global budget is ample.
        using var throttle = Gateway(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 400_000, DeviceBytesPerSecond = 1,
            GlobalBurstBytes = 100_000_000, GlobalBytesPerSecond = 100_000_000,
        });
        await throttle.OpenAsync("d1", "r1", 300_000, default);
        await throttle.OpenAsync("d2", "r1", 300_000, default);
        await throttle.OpenAsync("d3", null, 0, default);

        Assert.True((await throttle.TryConsumeAsync("d1", 200_000, default)).Allowed);
        Assert.True((await throttle.TryConsumeAsync("d2", 100_000, default)).Allowed); // the rollout's 300 kB burst is now spent
        var refused = await throttle.TryConsumeAsync("d1", 150_000, default);
        Assert.Equal((false, "rollout-rate", 1.0), (refused.Allowed, refused.Reason, refused.RetryAfter.TotalSeconds));
        Assert.False((await throttle.TryConsumeAsync("d2", 1, default)).Allowed);

        // Not a member: unaffected by the spent rollout.
        Assert.True((await throttle.TryConsumeAsync("d3", 400_000, default)).Allowed);

        // One second refills the rollout by its cap; d1's device bytes were not charged by the refusal, so 200 kB fit.
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True((await throttle.TryConsumeAsync("d1", 200_000, default)).Allowed);
        Assert.Equal("rollout-rate", (await throttle.TryConsumeAsync("d2", 150_000, default)).Reason);

        // Leaving the rollout (e.g. the work is now a repair) removes the cap for that device.
        await throttle.OpenAsync("d2", null, 0, default);
        Assert.True((await throttle.TryConsumeAsync("d2", 150_000, default)).Allowed);
    }

    [Fact]
    public async Task Grant_rate_is_the_lower_of_device_rate_and_rollout_cap_and_a_global_refusal_keeps_the_rollout_bytes()
    {
        using var throttle = Gateway(new DownloadThrottleOptions
        {
            DeviceBurstBytes = 10_000_000, DeviceBytesPerSecond = 1_000_000,
            GlobalBurstBytes = 100_000, GlobalBytesPerSecond = 100_000,
        });
        Assert.Equal(1_000_000, (await throttle.OpenAsync("d1", null, 0, default)).BytesPerSecond);
        Assert.Equal(50_000, (await throttle.OpenAsync("d1", "slow", 50_000, default)).BytesPerSecond);
        Assert.Equal(1_000_000, (await throttle.OpenAsync("d2", "fast", 5_000_000, default)).BytesPerSecond);

        // d2 spends the global budget; d1's request is then refused globally, and the rollout bytes it took stay
        // unspent (given back when the lease expires): after one second the rollout's full 256 KiB burst admits 250 kB.
        Assert.True((await throttle.TryConsumeAsync("d2", 100_000, default)).Allowed);
        Assert.Equal("global", (await throttle.TryConsumeAsync("d1", 200_000, default)).Reason);
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True((await throttle.TryConsumeAsync("d1", 250_000, default)).Allowed);
        Assert.Equal("rollout-rate", (await throttle.TryConsumeAsync("d1", 100_000, default)).Reason);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => throttle.OpenAsync("d1", "slow", -1, default));
    }

    [Fact]
    public async Task Two_gateways_serving_one_device_stay_within_its_one_cluster_wide_budget_with_few_round_trips()
    {
        const long Rate = 200_000, Burst = 300_000, Chunk = 64 * 1024;
        var options = new DownloadThrottleOptions
        {
            DeviceBurstBytes = Burst, DeviceBytesPerSecond = Rate,
            GlobalBurstBytes = 1_000_000_000, GlobalBytesPerSecond = 1_000_000_000,
        };
        using var a = Gateway(options, "gw-a");
        using var b = Gateway(options, "gw-b");
        long admitted = 0;
        var requests = 0;
        // A greedy device: 4 requests every 50 ms (~5 MB/s wanted), alternating gateways, for 10 s.
        for (var step = 1; step <= 200; step++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(50));
            for (var i = 0; i < 4; i++, requests++)
            {
                var gateway = requests % 2 == 0 ? a : b;
                if ((await gateway.TryConsumeAsync("dev", Chunk, default)).Allowed) admitted += Chunk;
            }
            var elapsed = step * 0.05;
            Assert.True(admitted <= Burst + Rate * elapsed + 1,
                $"after {elapsed:0.00} s the two gateways admitted {admitted} bytes; the device budget allows {Burst + Rate * elapsed:0}");
        }
        _output.WriteLine($"admitted {admitted} bytes in 10 s (budget {Burst + Rate * 10}); {_leases.Value} lease round trips for {requests} requests");
        // Close to the budget (the leases park at most one lease per gateway), not far below it.
        Assert.True(admitted >= Rate * 10 * 0.7, $"admitted only {admitted} bytes in 10 s at {Rate} B/s");
        // Budget round trips (device and global, refusals included) are a fraction of the requests.
        Assert.True(_leases.Value < requests / 4, $"{_leases.Value} lease round trips for {requests} requests");
    }

    [Fact]
    public async Task A_budget_entity_passivates_only_at_rest()
    {
        var parent = CreateTestProbe();
        var entity = parent.ChildActorOf(BudgetActor.Props(BudgetIds.Device("p"), TimeSpan.FromMilliseconds(200), _clock));
        entity.Tell(new LeaseBudget(BudgetIds.Device("p"), "gw", 1000, 1000, new BudgetLimits(1000, 100)), TestActor);
        ExpectMsg<BudgetLeased>(l => l.Bytes == 1000);
        // The bucket is empty: forgetting it would hand out a free burst, so the idle entity stays.
        parent.ExpectNoMsg(TimeSpan.FromMilliseconds(600));
        _clock.Advance(TimeSpan.FromSeconds(10));
        var passivate = parent.ExpectMsg<Passivate>(TimeSpan.FromSeconds(3));
        Assert.IsType<BudgetActor.Stop>(passivate.StopMessage);
        await Task.CompletedTask;
    }

    [Fact]
    public void Open_records_the_rollout_and_leases_name_it_and_refusals_name_their_limit()
    {
        var entity = Sys.ActorOf(BudgetActor.Props(BudgetIds.Device("x"), TimeSpan.FromMinutes(2), _clock));
        var limits = new BudgetLimits(500, 100, 10_000, 60_000);
        entity.Tell(new OpenDeviceBudget("x", "ro-9", 40, limits));
        var opened = ExpectMsg<DeviceBudgetOpened>();
        Assert.Equal((10_000L, 40L, T0.AddMinutes(1)), (opened.RemainingInWindow, opened.BytesPerSecond, opened.WindowEnd));
        entity.Tell(new LeaseBudget(BudgetIds.Device("x"), "gw", 500, 500, limits));
        var leased = ExpectMsg<BudgetLeased>();
        Assert.Equal(("ro-9", 40L, (DateTimeOffset?)T0.AddMinutes(1)), (leased.RolloutId, leased.RolloutBytesPerSecond, leased.WindowEnd));
        entity.Tell(new LeaseBudget(BudgetIds.Device("x"), "gw", 200, 200, limits));
        var denied = ExpectMsg<BudgetDenied>();
        Assert.Equal(("device-rate", 2000L), (denied.Reason, denied.RetryAfterMs));
        Assert.Equal("rollout-rate", BudgetActor.ReasonFor(BudgetIds.Rollout("r"), false));
        Assert.Equal("global", BudgetActor.ReasonFor(BudgetIds.Global, false));
    }

    [Fact]
    public void Invalid_options_and_messages_are_rejected_with_the_input_named()
    {
        var ex = Assert.Throws<ArgumentException>(() => new DownloadThrottle(new DownloadThrottleOptions { DeviceBytesPerSecond = 0 }, TimeProvider.System,
            _ => Task.FromResult<IActorRef>(ActorRefs.Nobody), "gw", TimeSpan.FromSeconds(1)));
        Assert.Contains("Throttle:DeviceBytesPerSecond", ex.Message);
        Assert.Contains("Throttle:LeaseDuration", string.Join(" ", new DownloadThrottleOptions { LeaseDuration = TimeSpan.FromSeconds(30) }.Validate()));
        Assert.Contains("Throttle:BudgetIdleTimeout", string.Join(" ", new DownloadThrottleOptions { BudgetIdleTimeout = TimeSpan.FromSeconds(1) }.Validate()));
        Assert.Throws<ArgumentException>(() => new LeaseBudget("devices:x", "gw", 1, 1, new BudgetLimits(1, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LeaseBudget("global", "gw", 10, 5, new BudgetLimits(1, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BudgetLimits(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReturnBudget("global", 0, null));
    }
}
