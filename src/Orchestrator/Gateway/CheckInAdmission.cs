using System.Collections.Concurrent;
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

    /// <summary>
    /// While every slot is taken, a device whose check-in this gateway answered less than this many seconds ago is refused
    /// at once instead of waiting in the queue, so devices on their cadence keep the queue during a storm of early
    /// check-ins (default 60; 0: no preference, first come first served).
    /// </summary>
    public int EarlyWithinSeconds { get; set; } = 60;

    /// <summary>Slots of the table of recent check-ins (8 bytes each, default 1,048,576: 8 MiB, whatever the fleet's size).</summary>
    public int RecentSlots { get; set; } = 1 << 20;

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (EarlyWithinSeconds is < 0 or > 86_400)
            yield return $"Admission:EarlyWithinSeconds {EarlyWithinSeconds} is out of range; use 0 (off)..86400 seconds (default 60).";
        if (RecentSlots is < 1024 or > 1 << 28)
            yield return $"Admission:RecentSlots {RecentSlots} is out of range; use 1024..268435456 (default 1048576).";
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
/// costs no database read and no actor message). While every slot is taken, a device this gateway answered within
/// <see cref="AdmissionOptions.EarlyWithinSeconds"/> (<see cref="RecentCheckIns"/>), or one that already has a check-in
/// queued or being answered here, is refused without queueing: devices checking in again and again, or a captured
/// request replayed, cannot fill the queue in front of devices on their cadence.
/// </summary>
public sealed class CheckInAdmission(AdmissionOptions options) : IEndpointFilter, IDisposable
{
    private readonly RecentCheckIns _recent = new(options.RecentSlots);
    private readonly TimeSpan _early = TimeSpan.FromSeconds(options.EarlyWithinSeconds);

    private readonly ConcurrencyLimiter _limiter = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.MaxConcurrentCheckIns,
        QueueLimit = options.MaxQueuedCheckIns,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    // Check-ins of each device id inside this filter (queued or worked on); at most the limit plus the queue plus the
    // requests being refused at this instant, so it stays small whatever the fleet's size. Every check-in adds and
    // removes its id, so the table's write locks are taken twice per check-in by up to the limit of requests at once:
    // InFlightStripes locks instead of the default one per core, so those writers rarely wait on each other.
    private readonly ConcurrentDictionary<string, int> _inFlight = new(InFlightStripes, 64, StringComparer.Ordinal);

    private const int InFlightStripes = 64;

    /// <inheritdoc />
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var deviceId = http.Request.RouteValues["deviceId"] as string;
        if (_early <= TimeSpan.Zero || deviceId is null) return await AdmitAsync(context, next, deviceId).ConfigureAwait(false);
        var alongside = _inFlight.AddOrUpdate(deviceId, 1, (_, n) => n + 1) - 1;
        try
        {
            string? why = null;
            if (alongside > 0)
                why = $"Device '{deviceId}' already has a check-in waiting or being answered here and the gateway is at its check-in limit " +
                      "(an agent checks in once at a time; a repeat gets no place in the queue); nothing was recorded.";
            else if (_recent.SinceLastAnswer(deviceId) is { } since && since < _early)
                why = $"Device '{deviceId}' was answered {since.TotalSeconds:F0} s ago and the gateway is at its check-in limit " +
                      $"(devices on their schedule go first within Admission:EarlyWithinSeconds, {options.EarlyWithinSeconds} s); nothing was recorded.";
            if (why is null) return await AdmitAsync(context, next, deviceId).ConfigureAwait(false);
            // Early or repeated, and the gateway is full: refused before it can queue (AttemptAcquire takes a free slot, never a queue place).
            using var free = _limiter.AttemptAcquire(1);
            if (!free.IsAcquired) return Refuse(http, alongside > 0 ? "repeat" : "early", why);
            return await AnswerAsync(context, next, deviceId).ConfigureAwait(false);
        }
        finally
        {
            if (_inFlight.AddOrUpdate(deviceId, 0, (_, n) => n - 1) == 0) _inFlight.TryRemove(new KeyValuePair<string, int>(deviceId, 0));
        }
    }

    private async ValueTask<object?> AdmitAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next, string? deviceId)
    {
        var http = context.HttpContext;
        using var lease = await _limiter.AcquireAsync(1, http.RequestAborted).ConfigureAwait(false);
        if (!lease.IsAcquired)
            return Refuse(http, "check-in-admission",
                $"The gateway is at its check-in limit ({options.MaxConcurrentCheckIns} at once, {options.MaxQueuedCheckIns} waiting; Admission:*); nothing was recorded.");
        return await AnswerAsync(context, next, deviceId).ConfigureAwait(false);
    }

    private async ValueTask<object?> AnswerAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next, string? deviceId)
    {
        var result = await next(context).ConfigureAwait(false);
        // Only a check-in whose credential proved the device (the endpoint set its id) and that was answered counts.
        if (deviceId is not null && context.HttpContext.Items.ContainsKey(DeviceEndpoints.DeviceIdItem)
            && result is IStatusCodeHttpResult { StatusCode: null or StatusCodes.Status200OK })
            _recent.Answered(deviceId);
        return result;
    }

    private IResult Refuse(HttpContext http, string limit, string why)
    {
        GatewayMetrics.Throttled.Add(1, new KeyValuePair<string, object?>("limit", limit));
        var wait = options.RetryAfterSeconds + Random.Shared.Next(options.RetryAfterSeconds + 1);
        http.Response.Headers.RetryAfter = wait.ToString(CultureInfo.InvariantCulture);
        return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "node_busy", $"{why} Check in again after {wait} s (Retry-After).");
    }

    /// <inheritdoc />
    public void Dispose() => _limiter.Dispose();
}
