using Akka.Actor;
using Akka.Cluster.Sharding;
using Orchestrator.ChunkStore.Throttling;
using Orchestrator.Messages.Budgets;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>
/// One cluster-wide download budget (a device, a capped rollout, or the global egress), an entity of the
/// <c>budgets</c> shard region on <c>chunks</c> nodes. Gateways lease bytes from it (<see cref="LeaseBudget"/>), spend
/// them locally and give back what they did not spend (<see cref="ReturnBudget"/>); a device's check-in
/// (<see cref="OpenDeviceBudget"/>) records its capped rollout and reads its grant.
/// <para>
/// State is soft, never persisted: a budget is a rate, and a bucket that refills to full within seconds is worth
/// less than the journal write every lease would cost. Losing it (its node crashed, its shard moved) grants at most one
/// extra burst and, for a device, one extra window — bounded, and documented in docs/configuration.md. An idle entity
/// passivates only when its bucket is full again and no window use is running, so passivation itself loses nothing
/// (leases expire long before the idle timeout, so no gateway still holds bytes of it either).
/// </para>
/// States: <c>Waiting</c> (no limits known yet; the first message brings them) → <c>Keeping</c>.
/// </summary>
public sealed class BudgetActor : ReceiveActor
{
    private readonly string _budgetId;
    private readonly TimeProvider _clock;
    private BudgetBucket? _bucket;
    private string? _rolloutId;
    private long _rolloutBytesPerSecond;

    /// <summary>The message the entity passivates with (local to its node, never serialized).</summary>
    public sealed class Stop
    {
        /// <summary>The one instance.</summary>
        public static readonly Stop Instance = new();
        private Stop() { }
    }

    /// <summary>Props for the entity <paramref name="budgetId"/>.</summary>
    /// <param name="budgetId">Entity id (<see cref="BudgetIds"/>).</param>
    /// <param name="idleTimeout">Passivate after this long without a message, once the budget is at rest.</param>
    /// <param name="clock">Clock (tests move it by hand).</param>
    public static Props Props(string budgetId, TimeSpan idleTimeout, TimeProvider? clock = null) =>
        Akka.Actor.Props.Create(() => new BudgetActor(budgetId, idleTimeout, clock ?? TimeProvider.System));

    /// <summary>Creates the entity; use <see cref="Props"/>.</summary>
    public BudgetActor(string budgetId, TimeSpan idleTimeout, TimeProvider clock)
    {
        _budgetId = budgetId;
        _clock = clock;
        SetReceiveTimeout(idleTimeout);
        Waiting();
    }

    /// <summary>The limit a refusal of this budget names (the 429 reason and the <c>limit</c> metric tag).</summary>
    public static string ReasonFor(string budgetId, bool windowRefused) =>
        budgetId.StartsWith(BudgetIds.DevicePrefix, StringComparison.Ordinal) ? (windowRefused ? "device-window" : "device-rate")
        : budgetId.StartsWith(BudgetIds.RolloutPrefix, StringComparison.Ordinal) ? "rollout-rate"
        : "global";

    private string Kind => ReasonFor(_budgetId, false) switch { "global" => "global", "rollout-rate" => "rollout", _ => "device" };

    private void Waiting()
    {
        Receive<OpenDeviceBudget>(open => { Start(open.Limits); OnOpen(open); });
        Receive<LeaseBudget>(lease => { Start(lease.Limits); OnLease(lease); });
        // A return to an entity that lost its state (moved or passivated) has no bucket to refund: the bytes are
        // simply not counted again, which can only lower what the cluster sends.
        Receive<ReturnBudget>(_ => { });
        Receive<ReceiveTimeout>(_ => Passivate());
        Receive<Stop>(_ => Context.Stop(Self));
    }

    private void Keeping()
    {
        Receive<OpenDeviceBudget>(OnOpen);
        Receive<LeaseBudget>(OnLease);
        Receive<ReturnBudget>(r =>
        {
            _bucket!.Return(r.Bytes, r.WindowEnd, _clock.GetUtcNow());
            ChunkStoreMetrics.BudgetReturnedBytes.Add(r.Bytes, new KeyValuePair<string, object?>("budget", Kind));
        });
        Receive<ReceiveTimeout>(_ =>
        {
            if (_bucket!.IsAtRest(_clock.GetUtcNow())) Passivate();
        });
        Receive<Stop>(_ => Context.Stop(Self));
    }

    private void Start(BudgetLimits limits)
    {
        _bucket = new BudgetBucket(limits, _clock.GetUtcNow());
        ChunkStoreMetrics.BudgetEntitiesStarted.Add(1, new KeyValuePair<string, object?>("budget", Kind));
        Become(Keeping);
    }

    private void OnOpen(OpenDeviceBudget open)
    {
        var now = _clock.GetUtcNow();
        _bucket!.Adopt(open.Limits, now);
        _bucket.RollWindow(now);
        _rolloutId = open.RolloutId;
        _rolloutBytesPerSecond = open.RolloutBytesPerSecond;
        // The whole rollout may not exceed its cap, so neither may any one of its devices.
        var rate = _rolloutId is null ? open.Limits.BytesPerSecond : Math.Min(open.Limits.BytesPerSecond, _rolloutBytesPerSecond);
        Sender.Tell(new DeviceBudgetOpened(open.DeviceId, _bucket.RemainingInWindow(now), rate, _bucket.WindowEnd));
    }

    private void OnLease(LeaseBudget lease)
    {
        var now = _clock.GetUtcNow();
        _bucket!.Adopt(lease.Limits, now);
        var outcome = _bucket.Lease(lease.Need, lease.Want, now);
        var kind = new KeyValuePair<string, object?>("budget", Kind);
        if (!outcome.Allowed)
        {
            var reason = ReasonFor(_budgetId, outcome.WindowRefused);
            ChunkStoreMetrics.BudgetDenials.Add(1, new KeyValuePair<string, object?>("limit", reason));
            Sender.Tell(new BudgetDenied(_budgetId, reason, (long)Math.Ceiling(outcome.RetryAfter.TotalMilliseconds)));
            return;
        }
        ChunkStoreMetrics.BudgetLeases.Add(1, kind);
        ChunkStoreMetrics.BudgetLeasedBytes.Add(outcome.Granted, kind);
        Sender.Tell(new BudgetLeased(_budgetId, outcome.Granted, _bucket.Limits.HasWindow ? _bucket.WindowEnd : null, _rolloutId, _rolloutBytesPerSecond));
    }

    private void Passivate() => Context.Parent.Tell(new Passivate(Stop.Instance));
}
