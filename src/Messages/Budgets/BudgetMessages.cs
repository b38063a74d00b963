namespace Orchestrator.Messages.Budgets;

// Download budgets of the cluster (role "chunks", shard region "budgets"): one entity per device, one per capped
// rollout and one global entity, each a token bucket. Gateways lease bytes from them and spend the leases locally, so
// a chunk request costs a cluster round trip only when the gateway's lease of that budget is used up. These messages
// cross nodes whenever a gateway and the budget's shard live apart; they are validated in their constructors, so an
// invalid one never reaches an entity.

/// <summary>A message routed to one budget entity by <see cref="BudgetId"/> (see <see cref="BudgetIds"/>).</summary>
public interface IWithBudgetId
{
    /// <summary>The budget entity: <c>device:&lt;id&gt;</c>, <c>rollout:&lt;id&gt;</c> or <c>global</c>.</summary>
    string BudgetId { get; }
}

/// <summary>Entity ids of the budget region.</summary>
public static class BudgetIds
{
    /// <summary>The one global egress budget of the cluster.</summary>
    public const string Global = "global";

    /// <summary>Prefix of device budgets.</summary>
    public const string DevicePrefix = "device:";

    /// <summary>Prefix of capped-rollout budgets.</summary>
    public const string RolloutPrefix = "rollout:";

    /// <summary>The budget of one device.</summary>
    public static string Device(string deviceId) => DevicePrefix + deviceId;

    /// <summary>The shared budget of one capped rollout.</summary>
    public static string Rollout(string rolloutId) => RolloutPrefix + rolloutId;

    /// <summary>Checks an entity id: <c>global</c>, or a known prefix followed by 1-200 characters without whitespace.</summary>
    public static string Validate(string? budgetId, string paramName)
    {
        if (budgetId == Global) return budgetId;
        if (budgetId is not null)
        {
            foreach (var prefix in new[] { DevicePrefix, RolloutPrefix })
            {
                if (!budgetId.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var rest = budgetId.Length - prefix.Length;
                if (rest is >= 1 and <= 200 && !budgetId.Any(char.IsWhiteSpace)) return budgetId;
            }
        }
        throw new ArgumentException($"Invalid budget id '{budgetId}': use 'global', 'device:<device id>' or 'rollout:<rollout id>'.", paramName);
    }
}

/// <summary>
/// The limits of one budget as the asking gateway is configured (every gateway of a cluster is configured alike; an
/// entity that sees other limits adopts them without refilling, so a mismatch never grants a free burst).
/// </summary>
/// <param name="BurstBytes">Bucket capacity, bytes (&gt; 0).</param>
/// <param name="BytesPerSecond">Refill rate, bytes per second (&gt; 0).</param>
/// <param name="MaxBytesPerWindow">Bytes per window (device budgets; 0 = no window).</param>
/// <param name="WindowMilliseconds">Window length (device budgets; 0 = no window).</param>
public sealed record BudgetLimits(long BurstBytes, long BytesPerSecond, long MaxBytesPerWindow = 0, long WindowMilliseconds = 0)
{
    /// <summary>Bucket capacity, bytes.</summary>
    public long BurstBytes { get; } = BurstBytes > 0 ? BurstBytes : throw new ArgumentOutOfRangeException(nameof(BurstBytes), BurstBytes, "A budget's burst must be > 0 bytes.");
    /// <summary>Refill rate, bytes per second.</summary>
    public long BytesPerSecond { get; } = BytesPerSecond > 0 ? BytesPerSecond : throw new ArgumentOutOfRangeException(nameof(BytesPerSecond), BytesPerSecond, "A budget's rate must be > 0 bytes per second.");
    /// <summary>Bytes per window; 0 = none.</summary>
    public long MaxBytesPerWindow { get; } = MaxBytesPerWindow >= 0 ? MaxBytesPerWindow : throw new ArgumentOutOfRangeException(nameof(MaxBytesPerWindow), MaxBytesPerWindow, "Must be >= 0 (0 = no window).");
    /// <summary>Window length in milliseconds; 0 = none.</summary>
    public long WindowMilliseconds { get; } = WindowMilliseconds >= 0 ? WindowMilliseconds : throw new ArgumentOutOfRangeException(nameof(WindowMilliseconds), WindowMilliseconds, "Must be >= 0 (0 = no window).");

    /// <summary>True when a per-window byte cap applies.</summary>
    public bool HasWindow => MaxBytesPerWindow > 0 && WindowMilliseconds > 0;
}

/// <summary>
/// Check-in of a device at a gateway: records which capped rollout (if any) its downloads now count against (a null
/// <paramref name="RolloutId"/> or a cap of 0 removes the membership) and asks for the session's grant. Answered with
/// <see cref="DeviceBudgetOpened"/>.
/// </summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="RolloutId">The capped rollout the device works for, or null.</param>
/// <param name="RolloutBytesPerSecond">The rollout's bandwidth cap (0 = none).</param>
/// <param name="Limits">The device limits (burst, rate, window).</param>
public sealed record OpenDeviceBudget(string DeviceId, string? RolloutId, long RolloutBytesPerSecond, BudgetLimits Limits) : IWithBudgetId, IOrchestratorMessage
{
    /// <summary>Device id.</summary>
    public string DeviceId { get; } = Devices.DeviceIdRules.Validate(DeviceId, nameof(DeviceId));
    /// <summary>Capped rollout, or null (also when the cap is 0).</summary>
    public string? RolloutId { get; } = RolloutId is null || RolloutBytesPerSecond == 0 ? null : ValidRolloutId(RolloutId);
    /// <summary>The rollout's cap (0 when no rollout).</summary>
    public long RolloutBytesPerSecond { get; } = RolloutBytesPerSecond < 0
        ? throw new ArgumentOutOfRangeException(nameof(RolloutBytesPerSecond), RolloutBytesPerSecond, "A rollout cap must be >= 0 (0 = none).")
        : RolloutId is null ? 0 : RolloutBytesPerSecond;
    /// <summary>Device limits.</summary>
    public BudgetLimits Limits { get; } = Limits ?? throw new ArgumentNullException(nameof(Limits));

    /// <inheritdoc />
    public string BudgetId => BudgetIds.Device(DeviceId);

    private static string ValidRolloutId(string id) => BudgetIds.Validate(BudgetIds.Rollout(id), nameof(RolloutId))[BudgetIds.RolloutPrefix.Length..];
}

/// <summary>The grant of a device's session, from its cluster-wide budget.</summary>
/// <param name="DeviceId">Device id.</param>
/// <param name="RemainingInWindow">Bytes the device may still fetch in this window.</param>
/// <param name="BytesPerSecond">The device's rate: min(device rate, rollout cap).</param>
/// <param name="WindowEnd">When the window (and so the grant) ends.</param>
public sealed record DeviceBudgetOpened(string DeviceId, long RemainingInWindow, long BytesPerSecond, DateTimeOffset WindowEnd) : IOrchestratorMessage;

/// <summary>
/// A gateway asks a budget for a lease: at least <paramref name="Need"/> bytes (the request it is serving) and up to
/// <paramref name="Want"/> (what it expects to spend before the lease expires). Answered with <see cref="BudgetLeased"/>
/// or <see cref="BudgetDenied"/>.
/// </summary>
/// <param name="BudgetId">The budget entity.</param>
/// <param name="Gateway">The asking gateway (its cluster address), for logs and metrics.</param>
/// <param name="Need">Bytes needed now (&gt; 0).</param>
/// <param name="Want">Bytes wanted (&gt;= <paramref name="Need"/>).</param>
/// <param name="Limits">The budget's limits as this gateway is configured.</param>
public sealed record LeaseBudget(string BudgetId, string Gateway, long Need, long Want, BudgetLimits Limits) : IWithBudgetId, IOrchestratorMessage
{
    /// <inheritdoc />
    public string BudgetId { get; } = BudgetIds.Validate(BudgetId, nameof(BudgetId));
    /// <summary>The asking gateway.</summary>
    public string Gateway { get; } = string.IsNullOrWhiteSpace(Gateway) ? throw new ArgumentException("Gateway is required.", nameof(Gateway)) : Gateway;
    /// <summary>Bytes needed now.</summary>
    public long Need { get; } = Need > 0 ? Need : throw new ArgumentOutOfRangeException(nameof(Need), Need, "A lease needs > 0 bytes.");
    /// <summary>Bytes wanted.</summary>
    public long Want { get; } = Want >= Need ? Want : throw new ArgumentOutOfRangeException(nameof(Want), Want, $"Want must be >= Need ({Need}).");
    /// <summary>The budget's limits.</summary>
    public BudgetLimits Limits { get; } = Limits ?? throw new ArgumentNullException(nameof(Limits));
}

/// <summary>
/// A lease: the bytes were taken from the budget's bucket (and window) and are the gateway's to spend until it
/// expires; what it does not spend it gives back with <see cref="ReturnBudget"/>.
/// </summary>
/// <param name="BudgetId">The budget entity.</param>
/// <param name="Bytes">Bytes leased (&gt;= the request's Need).</param>
/// <param name="WindowEnd">Device budgets: the window the bytes were charged to (a return refunds only that window); otherwise null.</param>
/// <param name="RolloutId">Device budgets: the capped rollout the device's downloads also count against, or null.</param>
/// <param name="RolloutBytesPerSecond">Device budgets: that rollout's cap (0 = none).</param>
public sealed record BudgetLeased(string BudgetId, long Bytes, DateTimeOffset? WindowEnd, string? RolloutId, long RolloutBytesPerSecond) : IOrchestratorMessage;

/// <summary>The budget cannot lease the needed bytes now; nothing was taken.</summary>
/// <param name="BudgetId">The budget entity.</param>
/// <param name="Reason">Which limit: <c>device-rate</c>, <c>device-window</c>, <c>rollout-rate</c> or <c>global</c>.</param>
/// <param name="RetryAfterMs">When the needed bytes will be there, from the cluster-wide bucket (or the window's end).</param>
public sealed record BudgetDenied(string BudgetId, string Reason, long RetryAfterMs) : IOrchestratorMessage;

/// <summary>A gateway gives back the unspent bytes of a lease (when it expires). Not answered.</summary>
/// <param name="BudgetId">The budget entity.</param>
/// <param name="Bytes">Unspent bytes (&gt; 0).</param>
/// <param name="WindowEnd">The window of the lease (device budgets), so a return after the window rolled over refunds only the bucket.</param>
public sealed record ReturnBudget(string BudgetId, long Bytes, DateTimeOffset? WindowEnd) : IWithBudgetId, IOrchestratorMessage
{
    /// <inheritdoc />
    public string BudgetId { get; } = BudgetIds.Validate(BudgetId, nameof(BudgetId));
    /// <summary>Unspent bytes.</summary>
    public long Bytes { get; } = Bytes > 0 ? Bytes : throw new ArgumentOutOfRangeException(nameof(Bytes), Bytes, "A return carries > 0 bytes.");
}
