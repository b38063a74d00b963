using System.Globalization;
using System.Threading.RateLimiting;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// Section <c>Admission</c>: how many check-ins the gateway works on at once and how many may wait. A storm beyond
/// that (every device of a fleet starting together) is answered 503 <c>node_busy</c> with <c>Retry-After</c> at once,
/// so the node's memory and latency stay bounded and the devices come back spread out instead of timing out.
/// </summary>
public sealed class AdmissionOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Admission";

    /// <summary>Check-ins worked on at once by this gateway (default 512).</summary>
    public int MaxConcurrentCheckIns { get; set; } = 512;

    /// <summary>Check-ins that may wait for a slot, oldest first (default 2048); beyond it a check-in is refused at once.</summary>
    public int MaxQueuedCheckIns { get; set; } = 2048;

    /// <summary>Seconds a refused device is told to wait (Retry-After); each refusal adds up to the same again at random, so a storm spreads out (default 30).</summary>
    public int RetryAfterSeconds { get; set; } = 30;

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxConcurrentCheckIns is < 1 or > 1_000_000)
            yield return $"Admission:MaxConcurrentCheckIns {MaxConcurrentCheckIns} is out of range; use 1..1000000 (default 512).";
        if (MaxQueuedCheckIns is < 0 or > 1_000_000)
            yield return $"Admission:MaxQueuedCheckIns {MaxQueuedCheckIns} is out of range; use 0..1000000 (default 2048).";
        if (RetryAfterSeconds is < 1 or > 3600)
            yield return $"Admission:RetryAfterSeconds {RetryAfterSeconds} is out of range; use 1..3600 seconds (default 30).";
    }
}

/// <summary>
/// Endpoint filter of the check-in route: a concurrency limit with a bounded FIFO queue
/// (<see cref="AdmissionOptions"/>). A refused check-in has changed nothing (it is refused before authentication, so it
/// costs no database read and no actor message).
/// </summary>
public sealed class CheckInAdmission(AdmissionOptions options) : IEndpointFilter, IDisposable
{
    private readonly ConcurrencyLimiter _limiter = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.MaxConcurrentCheckIns,
        QueueLimit = options.MaxQueuedCheckIns,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    /// <inheritdoc />
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        using var lease = await _limiter.AcquireAsync(1, context.HttpContext.RequestAborted).ConfigureAwait(false);
        if (!lease.IsAcquired)
        {
            GatewayMetrics.Throttled.Add(1, new KeyValuePair<string, object?>("limit", "check-in-admission"));
            var wait = options.RetryAfterSeconds + Random.Shared.Next(options.RetryAfterSeconds + 1);
            context.HttpContext.Response.Headers.RetryAfter = wait.ToString(CultureInfo.InvariantCulture);
            return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "node_busy",
                $"The gateway is at its check-in limit ({options.MaxConcurrentCheckIns} at once, {options.MaxQueuedCheckIns} waiting; Admission:*); " +
                $"nothing was recorded. Check in again after {wait} s (Retry-After).");
        }
        return await next(context).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => _limiter.Dispose();
}
