using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Hosting.Server;

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
    /// A device whose check-in this gateway answered less than this many seconds ago is early: it never waits in the queue
    /// and is refused at once while <see cref="EarlyMaxInFlight"/> check-ins are here or every slot is taken, so devices
    /// on their cadence keep the node during a storm of early check-ins (default 60; 0: no preference, first come first served).
    /// Never longer than half the cadence the node gives its devices (<see cref="EarlyWindow"/>).
    /// </summary>
    public int EarlyWithinSeconds { get; set; } = 60;

    /// <summary>
    /// The window within which a device is early on a node that tells its devices to check in every
    /// <paramref name="nextCheckInSeconds"/> seconds: <see cref="EarlyWithinSeconds"/>, but at most half that cadence, so a
    /// device on its cadence is never early, however short the cadence (<c>Gateway:NextCheckInSeconds</c>).
    /// </summary>
    public TimeSpan EarlyWindow(int? nextCheckInSeconds) =>
        TimeSpan.FromSeconds(nextCheckInSeconds is { } cadence and > 0 ? Math.Min(EarlyWithinSeconds, cadence / 2.0) : EarlyWithinSeconds);

    /// <summary>
    /// A device answered within <see cref="EarlyWithinSeconds"/> takes a slot only while fewer than this many check-ins are
    /// waiting or being answered here; otherwise it is refused at once (default 64). Devices on their cadence may use every
    /// slot and the queue, so a storm of devices checking in again and again keeps the node nearly idle for them instead of
    /// filling its slots.
    /// </summary>
    public int EarlyMaxInFlight { get; set; } = 64;

    /// <summary>
    /// A device answered within <see cref="EarlyWithinSeconds"/> is refused at once, before its credential and body are
    /// read, while new work has waited at least this many milliseconds at every one of the last
    /// <see cref="BusySustainedProbes"/> probes (<see cref="BusyProbe"/>; by default a request to the node itself, which
    /// waits in the socket engine's queue of ready connections, in front of every endpoint), so a node saturated by
    /// connections it has not parsed yet is seen too (default 5; 0: off). A pause of the whole node (a garbage
    /// collection) refuses the early devices that arrive while it lasts, unless <see cref="BusySustainedProbes"/> asks for
    /// more readings; a node sharing its cores with other work that keeps new requests waiting that long refuses early
    /// devices (never a device on its cadence) for that work's load.
    /// </summary>
    public double BusyQueueWaitMilliseconds { get; set; } = 5;

    /// <summary>
    /// A device answered within <see cref="EarlyWithinSeconds"/> is also refused at once while at least this many
    /// connections wait in the node's listen backlogs, connected by the kernel and not yet accepted by the node (default
    /// 64; 0: off; Linux only, <see cref="Hosting.ListenQueue"/>). Those are devices the node has not read a byte of, any of
    /// them on its cadence, and no probe over an open connection sees them; answering early devices meanwhile keeps them
    /// waiting, and once the backlog is full the kernel drops new connects for a second or more.
    /// </summary>
    public int BusyListenQueue { get; set; } = 64;

    /// <summary>Milliseconds between one probe ending and the next starting (default 5).</summary>
    public int BusyProbeMilliseconds { get; set; } = 5;

    /// <summary>
    /// Milliseconds between one probe ending and the next starting once every reading for at least that long has been
    /// calm (default 100; 0 or at most <see cref="BusyProbeMilliseconds"/>: always that). A reading is calm below a fifth
    /// of <see cref="BusyQueueWaitMilliseconds"/>; the first one that is not restores <see cref="BusyProbeMilliseconds"/>
    /// (<see cref="SaturationProbe"/>, "calm pace").
    /// </summary>
    public int BusyProbeCalmMilliseconds { get; set; } = 100;

    /// <summary>The probe's calm pace these options ask for.</summary>
    public ProbeCalmPace BusyProbeCalmPace => new(BusyProbeCalmMilliseconds, BusyQueueWaitMilliseconds / 5);

    /// <summary>
    /// What the busy rule measures: <c>loopback</c> (default), how long a request to the node itself (<c>GET /health/live</c>
    /// on its first plain-HTTP address) waits for its answer, which includes the socket engine's queue of ready connections
    /// where a storm's requests wait before any thread pool queue; or <c>threadpool</c>, how long a work item waits in the
    /// thread pool's global queue (for a node without a plain-HTTP listener).
    /// </summary>
    public string BusyProbe { get; set; } = LoopbackProbe;

    /// <summary><see cref="BusyProbe"/>: a request to the node itself.</summary>
    public const string LoopbackProbe = "loopback";

    /// <summary><see cref="BusyProbe"/>: a work item through the thread pool's global queue.</summary>
    public const string ThreadPoolProbe = "threadpool";

    /// <summary>
    /// Consecutive probes that must each have waited <see cref="BusyQueueWaitMilliseconds"/> before early devices are
    /// refused: the smallest of the last this many readings decides, the probe in progress counting as the newest (default
    /// 1: the latest reading, or the probe in progress once it has waited longer). A storm's queue fills and drains in
    /// waves, so a smallest-of-several reading catches the drained moments and lets the next wave in.
    /// </summary>
    public int BusySustainedProbes { get; set; } = 1;

    /// <summary>Slots of the table of recent check-ins (8 bytes each, default 1,048,576: 8 MiB, whatever the fleet's size).</summary>
    public int RecentSlots { get; set; } = 1 << 20;

    /// <summary>
    /// Open HTTP connections the node accepts at once (Kestrel's connection limit; default 400,000: twice the idle connections of a million devices on a 5-minute cadence). A connection beyond it is
    /// closed at once without an answer. With <see cref="MaxConcurrentCheckIns"/> and the body limit it bounds what a storm
    /// can make the node hold (docs/configuration.md "Admission"). Lowered at start to what the process's open-file limit
    /// leaves (<see cref="Hosting.ConnectionLimit"/>).
    /// </summary>
    public int MaxConnections { get; set; } = 400_000;

    /// <summary>
    /// Connections the kernel may hold completed but not yet accepted by the node (the listen backlog; default 4096, the
    /// kernel caps it at <c>net.core.somaxconn</c>). A storm's devices connect in the same instant; those beyond a full
    /// backlog are dropped and retried by their kernels seconds later, so the storm's connections keep arriving long after
    /// it began instead of being taken at once.
    /// </summary>
    public int AcceptBacklog { get; set; } = 4096;

    /// <summary>
    /// A refused check-in's answer says <c>Connection: close</c> and the node closes the connection after it (default true).
    /// The agent waits out Retry-After and comes back on a new connection, so a storm's refused devices hold no connection
    /// state in the node while they wait; kept open, thousands of idle connections outlive the young garbage-collected
    /// generations and their promotion pauses the node for the devices on their cadence. Off: the connection stays open
    /// for the device's retry (a client that cannot afford a new connection per retry).
    /// </summary>
    public bool CloseRefusedConnections { get; set; } = true;

    /// <summary>
    /// Accepted connections whose first bytes the node has not read yet, beyond which it accepts no more until it has
    /// caught up (default 256; 0: no bound). A storm's thousands of simultaneous connects otherwise all become connections
    /// in the node, each with its state on the managed heap, queued behind one another for their first read and promoted by
    /// every young garbage collection meanwhile; bounded, the rest wait in the kernel's listen backlog
    /// (<see cref="AcceptBacklog"/>), and beyond it their kernels retry the connect. A connection counts for at most
    /// <see cref="UnreadConnectionMilliseconds"/>.
    /// </summary>
    public int MaxUnreadConnections { get; set; } = 256;

    /// <summary>How long an accepted connection that sends nothing counts among <see cref="MaxUnreadConnections"/> (default 1000 ms).</summary>
    public int UnreadConnectionMilliseconds { get; set; } = 1000;

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (EarlyWithinSeconds is < 0 or > 86_400)
            yield return $"Admission:EarlyWithinSeconds {EarlyWithinSeconds} is out of range; use 0 (off)..86400 seconds (default 60).";
        if (RecentSlots is < 1024 or > 1 << 28)
            yield return $"Admission:RecentSlots {RecentSlots} is out of range; use 1024..268435456 (default 1048576).";
        if (EarlyMaxInFlight is < 1 or > 1_000_000)
            yield return $"Admission:EarlyMaxInFlight {EarlyMaxInFlight} is out of range; use 1 (an early device is answered only when nothing else is)..1000000 (default 64).";
        if (MaxConnections is < 16 or > 10_000_000)
            yield return $"Admission:MaxConnections {MaxConnections} is out of range; use 16..10000000 (default 400000).";
        if (BusyListenQueue is < 0 or > 10_000_000)
            yield return $"Admission:BusyListenQueue {BusyListenQueue} is out of range; use 0 (off)..10000000 connections (default 64).";
        if (MaxUnreadConnections is < 0 or > 10_000_000)
            yield return $"Admission:MaxUnreadConnections {MaxUnreadConnections} is out of range; use 0 (no bound)..10000000 (default 256).";
        if (UnreadConnectionMilliseconds is < 1 or > 600_000)
            yield return $"Admission:UnreadConnectionMilliseconds {UnreadConnectionMilliseconds} is out of range; use 1..600000 milliseconds (default 1000).";
        if (AcceptBacklog is < 1 or > 1_000_000)
            yield return $"Admission:AcceptBacklog {AcceptBacklog} is out of range; use 1..1000000 (default 4096; the kernel caps it at net.core.somaxconn).";
        if (MaxConcurrentCheckIns is < 1 or > 1_000_000)
            yield return $"Admission:MaxConcurrentCheckIns {MaxConcurrentCheckIns} is out of range; use 1..1000000 (default 512).";
        if (MaxQueuedCheckIns is < 0 or > 1_000_000)
            yield return $"Admission:MaxQueuedCheckIns {MaxQueuedCheckIns} is out of range; use 0..1000000 (default 2048).";
        if (BusyQueueWaitMilliseconds is < 0 or > 60_000 || double.IsNaN(BusyQueueWaitMilliseconds))
            yield return $"Admission:BusyQueueWaitMilliseconds {BusyQueueWaitMilliseconds} is out of range; use 0 (off)..60000 milliseconds (default 5).";
        if (BusyProbe is not (LoopbackProbe or ThreadPoolProbe))
            yield return $"Admission:BusyProbe '{BusyProbe}' is not a probe; use {LoopbackProbe} (a request to the node itself, default) or {ThreadPoolProbe} (the thread pool's queue, for a node without a plain-HTTP listener).";
        if (BusyProbeMilliseconds is < 1 or > 1000)
            yield return $"Admission:BusyProbeMilliseconds {BusyProbeMilliseconds} is out of range; use 1..1000 milliseconds (default 5).";
        if (BusyProbeCalmMilliseconds is < 0 or > 10_000)
            yield return $"Admission:BusyProbeCalmMilliseconds {BusyProbeCalmMilliseconds} is out of range; use 0 (always Admission:BusyProbeMilliseconds)..10000 milliseconds (default 100).";
        if (BusySustainedProbes is < 1 or > 1000)
            yield return $"Admission:BusySustainedProbes {BusySustainedProbes} is out of range; use 1 (the latest reading, default)..1000 probes.";
        if (RetryAfterSeconds is < 1 or > 3600)
            yield return $"Admission:RetryAfterSeconds {RetryAfterSeconds} is out of range; use 1..3600 seconds (default 30).";
    }
}

/// <summary>
/// The check-in route's door (<see cref="AnswerAsync"/>): a concurrency limit with a bounded FIFO queue
/// (<see cref="AdmissionOptions"/>). A refused check-in has changed nothing: it is refused before authentication and before
/// its body is read, so it costs no HMAC, no database read and no actor message. A device this gateway answered within
/// <see cref="AdmissionOptions.EarlyWithinSeconds"/> (<see cref="RecentCheckIns"/>) never queues and takes a slot only while
/// fewer than <see cref="AdmissionOptions.EarlyMaxInFlight"/> check-ins are here and new work waits less than
/// <see cref="AdmissionOptions.BusyQueueWaitMilliseconds"/> (<see cref="SaturationProbe"/>), so devices checking in again and again cannot fill
/// the slots, the queue or the node's cores in front of devices on their cadence.
/// </summary>
/// <remarks>
/// A refusal before authentication may depend only on the node's load and on what authenticated check-ins recorded: the
/// device id in the path is anyone's to write, so nothing an unauthenticated request does (waiting in the queue under a
/// device's id, say) may make that device's own check-in refused.
/// </remarks>
public sealed class CheckInAdmission(AdmissionOptions options, IServer? server = null, Hosting.NodeSettings? settings = null,
    Hosting.ListenQueue? listenQueue = null) : IDisposable
{
    private readonly Hosting.ListenQueue? _listenQueue = options.BusyListenQueue <= 0 || options.EarlyWithinSeconds <= 0 ? null : listenQueue;
    private readonly RecentCheckIns _recent = new(options.RecentSlots);
    private readonly TimeSpan _early = options.EarlyWindow(settings?.Gateway.NextCheckInSeconds);
    private readonly SaturationProbe? _probe = options.BusyQueueWaitMilliseconds <= 0 || options.EarlyWithinSeconds <= 0 ? null
        : options.BusyProbe == AdmissionOptions.LoopbackProbe && server is not null
            ? LoopbackRequestProbe.Of(server, options.BusyProbeMilliseconds, options.BusySustainedProbes, options.BusyProbeCalmPace)
            : new ThreadPoolQueueProbe(options.BusyProbeMilliseconds, options.BusySustainedProbes, options.BusyProbeCalmPace);

    private readonly ConcurrencyLimiter _limiter = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.MaxConcurrentCheckIns,
        QueueLimit = options.MaxQueuedCheckIns,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    // Check-ins inside this filter (waiting or being answered), refused ones excepted.
    private int _inFlight;

    /// <summary>Check-ins waiting or being answered here now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Admits the check-in of <paramref name="deviceId"/> (the route's, anyone's to write) and writes
    /// <paramref name="answer"/>'s result, or refuses it and writes the refusal. The route's request delegate calls this
    /// directly, not as an endpoint filter: the idle check-in is the node's most frequent request, and a filter's
    /// invocation context, bound arguments and boxed result are work its answer does not need.
    /// </summary>
    public async Task AnswerAsync<TState>(HttpContext http, string? deviceId, TState state, Func<string?, HttpContext, TState, ValueTask<IResult>> answer)
    {
        RateLimitLease? lease;
        IResult? refusal = null;
        if (_early > TimeSpan.Zero && deviceId is not null && _recent.SinceLastAnswer(deviceId) is { } since && since < _early)
            (lease, refusal) = AdmitEarly(http, deviceId, since);
        else
        {
            Interlocked.Increment(ref _inFlight);
            try
            {
                lease = await _limiter.AcquireAsync(1, http.RequestAborted).ConfigureAwait(false);
            }
            catch
            {
                Interlocked.Decrement(ref _inFlight);
                throw;
            }
            if (!lease.IsAcquired)
            {
                lease.Dispose();
                Interlocked.Decrement(ref _inFlight);
                refusal = Refuse(http, "check-in-admission",
                    $"The gateway is at its check-in limit ({options.MaxConcurrentCheckIns} at once, {options.MaxQueuedCheckIns} waiting; Admission:*); nothing was recorded.");
            }
        }
        if (refusal is not null || lease is null)
        {
            await refusal!.ExecuteAsync(http).ConfigureAwait(false);
            return;
        }
        // One frame for both ways in: the answer's wait (its directive's signature) suspends this method only once.
        IResult result;
        try
        {
            result = await answer(deviceId, http, state).ConfigureAwait(false);
            // The directive's signature is waited for here, inside the slot: the frames that built the answer have ended.
            if (result is CheckInAnswerResult { Answer.Signing: { } signing }) await signing.ConfigureAwait(false);
            // Only a check-in whose credential proved the device (the endpoint set its id) and that was answered counts.
            if (deviceId is not null && http.Features.Get<AuthenticatedDevice>() is not null
                && result is IStatusCodeHttpResult { StatusCode: null or StatusCodes.Status200OK })
                _recent.Answered(deviceId);
        }
        finally
        {
            lease.Dispose();
            Interlocked.Decrement(ref _inFlight);
        }
        // Written after the slot is freed: a slot bounds the work of answering, not the client's reading of it.
        await result.ExecuteAsync(http).ConfigureAwait(false);
    }

    // Early: a free slot while the gateway is nearly idle (counted in flight), or refused at once (never a queue place).
    private (RateLimitLease? Lease, IResult? Refusal) AdmitEarly(HttpContext http, string deviceId, TimeSpan since)
    {
        if (_probe is not null)
        {
            var wait = _probe.SustainedWaitMilliseconds;
            GatewayMetrics.AdmissionQueueWaitSeen.Record(wait);
            if (wait >= options.BusyQueueWaitMilliseconds) return (null, RefuseSaturated(http, backlogged: false));
        }
        if (_listenQueue is not null && _listenQueue.Waiting >= options.BusyListenQueue)
            return (null, RefuseSaturated(http, backlogged: true));
        if (Volatile.Read(ref _inFlight) >= options.EarlyMaxInFlight) return (null, RefuseEarly(http, deviceId, since, EarlyState.InFlight));
        var lease = _limiter.AttemptAcquire(1);
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            return (null, RefuseEarly(http, deviceId, since, EarlyState.Full));
        }
        Interlocked.Increment(ref _inFlight);
        return (lease, null);
    }

    private enum EarlyState { InFlight, Full }

    private string EarlyWindowText => $"{_early.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s (Admission:EarlyWithinSeconds, at most half of Gateway:NextCheckInSeconds)";

    private static readonly KeyValuePair<string, object?> SaturatedTag = new("limit", "early-queue-wait");
    private static readonly KeyValuePair<string, object?> BackloggedTag = new("limit", "early-listen-queue");
    // The saturated node's refusals, one body per Retry-After it may send (index: seconds beyond RetryAfterSeconds),
    // rendered on first use: while saturated, a refusal formats and serializes nothing.
    private readonly PreRenderedProblem?[] _saturated = new PreRenderedProblem?[options.RetryAfterSeconds + 1];
    private readonly PreRenderedProblem?[] _backlogged = new PreRenderedProblem?[options.RetryAfterSeconds + 1];

    private string Why(bool backlogged) => backlogged
        ? $"at least Admission:BusyListenQueue, {options.BusyListenQueue}, connections wait in its listen backlog, not yet accepted"
        : $"new work has waited ({options.BusyProbe} probe) for at least Admission:BusyQueueWaitMilliseconds, " +
        $"{options.BusyQueueWaitMilliseconds.ToString(CultureInfo.InvariantCulture)} ms, at each of the last Admission:BusySustainedProbes, " +
        $"{options.BusySustainedProbes}, probes";

    // Refused while the node is saturated: the answer names the rule and its settings, not the device or the reading, so
    // it is the same bytes for every device and is written from a buffer.
    private IResult RefuseSaturated(HttpContext http, bool backlogged)
    {
        GatewayMetrics.Throttled.Add(1, backlogged ? BackloggedTag : SaturatedTag);
        var extra = Random.Shared.Next(options.RetryAfterSeconds + 1);
        var rendered = backlogged ? _backlogged : _saturated;
        var answer = rendered[extra] ??= new PreRenderedProblem(StatusCodes.Status503ServiceUnavailable, options.RetryAfterSeconds + extra, "node_busy",
            $"The node is saturated: {Why(backlogged)}, and this device was answered here within {EarlyWindowText} " +
            $"(devices on their schedule go first); nothing was recorded. Check in again after {options.RetryAfterSeconds + extra} s (Retry-After).");
        http.Response.Headers.RetryAfter = answer.RetryAfter;
        CloseAfterRefusal(http);
        return answer;
    }

    // The message is formatted only here, for a refusal: an admitted early device costs no string.
    private IResult RefuseEarly(HttpContext http, string deviceId, TimeSpan since, EarlyState state) => state switch
    {
        _ => Refuse(http, "early",
            $"Device '{deviceId}' was answered {since.TotalSeconds:F0} s ago and " +
            (state == EarlyState.Full ? "the gateway is at its check-in limit" : "the gateway is busy") +
            $" (devices on their schedule go first: within {EarlyWindowText}, a device is answered " +
            $"only while fewer than Admission:EarlyMaxInFlight, {options.EarlyMaxInFlight}, check-ins are here); nothing was recorded."),
    };

    private IResult Refuse(HttpContext http, string limit, string why)
    {
        GatewayMetrics.Throttled.Add(1, new KeyValuePair<string, object?>("limit", limit));
        var wait = options.RetryAfterSeconds + Random.Shared.Next(options.RetryAfterSeconds + 1);
        http.Response.Headers.RetryAfter = wait.ToString(CultureInfo.InvariantCulture);
        CloseAfterRefusal(http);
        return HttpProblems.Problem(StatusCodes.Status503ServiceUnavailable, "node_busy", $"{why} Check in again after {wait} s (Retry-After).");
    }

    // Kestrel ends an HTTP/1.1 connection after a response that says so, without reading the refused request's body.
    private void CloseAfterRefusal(HttpContext http)
    {
        if (options.CloseRefusedConnections) http.Response.Headers.Connection = "close";
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _probe?.Dispose();
        _limiter.Dispose();
    }
}

/// <summary>
/// A problem answer (<see cref="Orchestrator.Messages.Protocol.ProblemResponse"/>, as <see cref="HttpProblems.Problem"/> writes it) serialized once and
/// written from its buffer every time, with the <c>Retry-After</c> it is sent with.
/// </summary>
internal sealed class PreRenderedProblem : IResult, IStatusCodeHttpResult
{
    private readonly byte[] _body;

    /// <summary>Serializes the answer.</summary>
    public PreRenderedProblem(int status, int retryAfterSeconds, string error, string message)
    {
        StatusCode = status;
        RetryAfter = retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        _body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Orchestrator.Messages.Protocol.ProblemResponse(error, message), HttpProblems.Json);
    }

    /// <inheritdoc />
    public int? StatusCode { get; }

    /// <summary>The Retry-After header's value (delta-seconds) the message names.</summary>
    public string RetryAfter { get; }

    /// <inheritdoc />
    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCode!.Value;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength = _body.Length;
        return response.Body.WriteAsync(_body, 0, _body.Length);
    }
}
