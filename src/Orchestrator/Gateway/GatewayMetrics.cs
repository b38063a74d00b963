using System.Diagnostics.Metrics;

namespace Orchestrator.Node.Gateway;

/// <summary>Instruments of the device gateway (meter <see cref="MeterName"/>).</summary>
public static class GatewayMetrics
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Orchestrator.Gateway";

    private static readonly Meter Meter = new(MeterName);

    // The check-in counters are the node's most frequent updates: plain interlocked counts, read by observable
    // instruments when metrics are collected, so a check-in pays no tag lookup in a metrics aggregator.
    private static readonly long[] CheckInsByAction = new long[Enum.GetValues<Orchestrator.Messages.Protocol.UpdateAction>().Length];
    private static long _checkInsWithoutActor;

    /// <summary>Counts a check-in answered with <paramref name="action"/> (<c>orch_gateway_checkins</c>).</summary>
    public static void CheckInAnswered(Orchestrator.Messages.Protocol.UpdateAction action) => Interlocked.Increment(ref CheckInsByAction[(int)action]);

    /// <summary>
    /// Counts a check-in the gateway answered "nothing to do" itself, without the device's actor (the idle fast path,
    /// <c>Gateway:AnswerIdleWithoutActor</c>; <c>orch_gateway_checkins_answered_without_actor</c>); it is also counted by
    /// <see cref="CheckInAnswered"/>.
    /// </summary>
    public static void CheckInAnsweredWithoutActor() => Interlocked.Increment(ref _checkInsWithoutActor);

    /// <summary>Check-ins answered, tagged with action.</summary>
    private static readonly ObservableCounter<long> CheckIns = Meter.CreateObservableCounter("orch_gateway_checkins",
        () => Enum.GetValues<Orchestrator.Messages.Protocol.UpdateAction>().Select(a =>
            new Measurement<long>(Volatile.Read(ref CheckInsByAction[(int)a]), new KeyValuePair<string, object?>("action", a.ToString()))),
        description: "Check-ins answered, by action");

    private static readonly ObservableCounter<long> CheckInsWithoutActor = Meter.CreateObservableCounter("orch_gateway_checkins_answered_without_actor",
        () => Volatile.Read(ref _checkInsWithoutActor), description: "Check-ins answered by the gateway's idle fast path, without the device actor");

    /// <summary>Fast-path sightings received from other nodes (<see cref="SightingsCarry"/>).</summary>
    public static readonly Counter<long> SightingsReceived = Meter.CreateCounter<long>("orch_gateway_sightings_received",
        description: "Sightings of devices answered without their actors on other nodes, received by this node");

    /// <summary>Ed25519 signatures over directive batch roots (each covers one or more directives, <see cref="Trust.DirectiveBatcher"/>).</summary>
    public static readonly Counter<long> DirectorSignatures = Meter.CreateCounter<long>("orch_director_batch_signatures",
        description: "Director signatures over directive batch roots");

    /// <summary>Directives covered by batch signatures; divided by <see cref="DirectorSignatures"/> it gives the mean batch size.</summary>
    public static readonly Counter<long> BatchedDirectives = Meter.CreateCounter<long>("orch_director_batched_directives",
        description: "Directives signed through a batch root");

    /// <summary>Device reports accepted, tagged with kind.</summary>
    public static readonly Counter<long> Reports = Meter.CreateCounter<long>("orch_gateway_reports", description: "Device reports accepted, by kind");

    /// <summary>Chunk bytes sent to devices.</summary>
    public static readonly Counter<long> ChunkBytesServed = Meter.CreateCounter<long>("orch_gateway_chunk_bytes", unit: "By", description: "Chunk bytes sent");

    /// <summary>Chunk requests answered 200/206.</summary>
    public static readonly Counter<long> ChunksServed = Meter.CreateCounter<long>("orch_gateway_chunks_served", description: "Chunk responses with a body");

    /// <summary>Requests refused with 429, tagged with the limit (device-rate, device-window, rollout-rate, global).</summary>
    public static readonly Counter<long> Throttled = Meter.CreateCounter<long>("orch_gateway_throttled", description: "Requests refused with 429, by limit");

    // Around Admission:BusyQueueWaitMilliseconds's useful range: what the admission decides on must be readable from /metrics.
    private static readonly InstrumentAdvice<double> QueueWaitBuckets = new()
    {
        HistogramBucketBoundaries = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 100, 250, 500, 1000, 2500],
    };

    /// <summary>
    /// Milliseconds each probe of the thread pool's global queue waited to run (<see cref="ThreadPoolQueueProbe"/>, while
    /// <c>Admission:BusyQueueWaitMilliseconds</c> is on).
    /// </summary>
    public static readonly Histogram<double> ThreadPoolQueueWait = Meter.CreateHistogram("orch_gateway_threadpool_queue_wait", "ms",
        "Milliseconds a probe work item waited in the thread pool's global queue", advice: QueueWaitBuckets);

    /// <summary>
    /// Milliseconds each probe request to the node itself took to be answered (<see cref="LoopbackRequestProbe"/>, while
    /// <c>Admission:BusyQueueWaitMilliseconds</c> is on with <c>Admission:BusyProbe=loopback</c>).
    /// </summary>
    public static readonly Histogram<double> LoopbackRequestWait = Meter.CreateHistogram("orch_gateway_loopback_request_wait", "ms",
        "Milliseconds a probe request to the node itself took to be answered", advice: QueueWaitBuckets);

    /// <summary>
    /// The sustained wait the check-in admission read when an early device arrived (what its busy rule decided on).
    /// </summary>
    public static readonly Histogram<double> AdmissionQueueWaitSeen = Meter.CreateHistogram("orch_gateway_admission_queue_wait_seen", "ms",
        "Sustained probe wait read by the check-in admission for an early device", advice: QueueWaitBuckets);

    private static Orchestrator.ChunkStore.Throttling.DownloadThrottle? _throttle;

    // One gauge per process (the meter is static); it reads whichever throttle the node registered last.
    private static readonly ObservableGauge<int> ThrottleDevices = Meter.CreateObservableGauge(
        "orch_gateway_throttle_devices", () => _throttle?.TrackedDevices ?? 0, description: "Devices whose cluster-wide budget this gateway holds a lease of");

    private static readonly ObservableGauge<int> BudgetLeases = Meter.CreateObservableGauge(
        "orch_gateway_budget_leases", () => _throttle?.LiveLeases ?? 0, description: "Budgets (device, rollout, global) this gateway holds a lease of");

    /// <summary>Points the throttle gauge at this node's throttle (called once at start).</summary>
    public static void ObserveThrottle(Orchestrator.ChunkStore.Throttling.DownloadThrottle throttle) => _throttle = throttle;

    private static CheckInAdmission? _admission;

    // Read when metrics are collected: ASP.NET Core's http.server.active_requests (not exported, NodeApp) would cost two
    // tagged updates per request for the same figure.
    private static readonly ObservableGauge<int> CheckInsInFlight = Meter.CreateObservableGauge(
        "orch_gateway_checkins_in_flight", () => _admission?.InFlight ?? 0, description: "Check-ins admitted and not yet answered, or waiting for a slot");

    /// <summary>Points the in-flight gauge at this node's check-in admission (called once at start).</summary>
    public static void ObserveAdmission(CheckInAdmission admission) => _admission = admission;

    /// <summary>Bytes devices reported downloading for completed installs, tagged with method (delta, chunks, unknown).</summary>
    public static readonly Counter<long> InstallBytes = Meter.CreateCounter<long>("orch_gateway_install_download_bytes", unit: "By",
        description: "Bytes downloaded per completed install as reported by devices, by method");

    /// <summary>Requests refused for authentication (401) or authorization (403), tagged with the code.</summary>
    public static readonly Counter<long> AuthFailures = Meter.CreateCounter<long>("orch_gateway_auth_failures", description: "Refused credentials, by error code");

    /// <summary>
    /// Reads of a device's request key from the node database (cache misses and expired entries of the credential
    /// cache); divided by the check-ins answered (<c>orch_gateway_checkins</c>) it gives database reads per check-in.
    /// </summary>
    public static readonly Counter<long> CredentialDbReads = Meter.CreateCounter<long>("orch_gateway_credential_db_reads",
        description: "Device request keys read from the node database (credential cache misses)");
}
