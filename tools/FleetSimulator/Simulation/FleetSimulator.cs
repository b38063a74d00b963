using System.Collections.Concurrent;
using System.Diagnostics;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Simulation;

/// <summary>Settings of a simulated fleet.</summary>
public sealed record SimulationOptions
{
    /// <summary>Number of devices.</summary>
    public required int Devices { get; init; }

    /// <summary>Gateway base URL (the node, or a proxy in front of it).</summary>
    public required string Gateway { get; init; }

    /// <summary>Folder holding one sub-folder per device (reused across runs).</summary>
    public required string Root { get; init; }

    /// <summary>Product every device runs.</summary>
    public required string Product { get; init; }

    /// <summary>Raw 32-byte content key sealed into each device.</summary>
    public required byte[] ContentKey { get; init; }

    /// <summary>Raw 32-byte release-signing public key sealed into each device.</summary>
    public required byte[] TrustRoot { get; init; }

    /// <summary>Device ids are this prefix and a five-digit number.</summary>
    public string IdPrefix { get; init; } = "sim-";

    /// <summary>Sessions allowed to run at the same time (the rest wait their turn).</summary>
    public int Concurrency { get; init; } = 32;

    /// <summary>Seconds between a device's check-ins; each wait is drawn uniformly from ±<see cref="JitterFraction"/> of it.</summary>
    public double CheckInIntervalSeconds { get; init; } = 30;

    /// <summary>Fraction of the interval by which each wait varies, so devices never check in in lock-step.</summary>
    public double JitterFraction { get; init; } = 0.5;

    /// <summary>Devices start spread uniformly over this many seconds (a fleet powering on).</summary>
    public double StartSpreadSeconds { get; init; } = 5;

    /// <summary>Stop each device after its first successful session (check-in, and install if told to).</summary>
    public bool OneSessionPerDevice { get; init; }

    /// <summary>Download and retry tuning of every device (the agent's own defaults unless set).</summary>
    public DownloadSettings Download { get; init; } = new() { Parallelism = 2, BackoffBaseMilliseconds = 500, BackoffCapMilliseconds = 10_000, RequestTimeoutSeconds = 30 };

    /// <summary>Seed for start offsets, jitter and damage (null: random).</summary>
    public int? Seed { get; init; }

    /// <summary>Checks the values; the message names the option.</summary>
    public void Validate()
    {
        if (Devices is < 1 or > 1_000_000) throw new ArgumentException($"--devices {Devices} is out of range; use 1..1000000");
        // The id is also the device's folder name under Root: a valid id cannot contain a path separator or "..".
        if (!Orchestrator.Messages.Devices.DeviceIdRules.IsValid(IdPrefix + "00000"))
            throw new ArgumentException($"--prefix '{IdPrefix}' does not make valid device ids ('{IdPrefix}00000'): use letters, digits, '.', '_', ':' and '-', starting with a letter or digit");
        if (Concurrency is < 1 or > 10_000) throw new ArgumentException($"--concurrency {Concurrency} is out of range; use 1..10000");
        if (CheckInIntervalSeconds <= 0) throw new ArgumentException($"--interval {CheckInIntervalSeconds} must be > 0 seconds");
        if (JitterFraction is < 0 or > 1) throw new ArgumentException($"--jitter {JitterFraction} must be between 0 and 1 (a fraction of the interval)");
        if (StartSpreadSeconds < 0) throw new ArgumentException($"--start-spread {StartSpreadSeconds} must be >= 0 seconds");
        if (ContentKey.Length != 32) throw new ArgumentException($"the content key has {ContentKey.Length} bytes; it must be the raw 32-byte content.key from `orch keys init`");
        try
        {
            Orchestrator.ChunkStore.Trust.TrustAnchor.Load(TrustRoot, "the trust root");
        }
        catch (Exception e) when (e is Orchestrator.ChunkStore.Validation.InvalidInputException or Orchestrator.ChunkStore.Validation.IntegrityException)
        {
            throw new ArgumentException($"the trust root is neither a root document (root.json of `orch keys init`) nor a raw 32-byte release-signing.pub: {e.Message}");
        }
        if (!Uri.TryCreate(Gateway, UriKind.Absolute, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"--gateway '{Gateway}' is not an absolute http(s) URL");
    }
}

/// <summary>A moment of the fleet: counters and how many devices have each installed version.</summary>
/// <param name="ElapsedSeconds">Seconds since <see cref="FleetSimulator.RunAsync"/> started.</param>
/// <param name="Devices">Fleet size.</param>
/// <param name="Versions">Installed version ID → device count.</param>
/// <param name="CheckIns">Check-ins answered.</param>
/// <param name="Upgrades">Upgrades installed.</param>
/// <param name="Repairs">Repairs done.</param>
/// <param name="FailedAttempts">Failed session attempts.</param>
/// <param name="Running">Sessions running now.</param>
/// <param name="BytesDownloaded">Bytes downloaded by successful sessions.</param>
public sealed record FleetSnapshot(double ElapsedSeconds, int Devices, IReadOnlyDictionary<long, int> Versions, long CheckIns, long Upgrades,
    long Repairs, long FailedAttempts, long Running, long BytesDownloaded)
{
    /// <summary>Devices whose installed version ID is at least <paramref name="versionId"/>.</summary>
    public int AtLeast(long versionId) => Versions.Where(v => v.Key >= versionId).Sum(v => v.Value);
}

/// <summary>
/// Runs many devices in one process, each with its own zones on disk and the real <see cref="UpdateSession"/>
/// (real check-ins, manifest verification, chunk downloads with SHA-256 checks, staging and journaled swap).
/// Sessions are bounded by <see cref="SimulationOptions.Concurrency"/>; check-ins are jittered. Failed attempts are
/// reported to the gateway by the session itself and retried after a jittered backoff.
/// </summary>
public sealed class FleetSimulator : IDisposable
{
    private readonly SimulationOptions _options;
    private readonly Action<string> _log;
    private readonly List<SimulatedDevice> _devices = [];
    private readonly long[] _installed;
    private readonly ConcurrentDictionary<string, int> _failureReasons = new(StringComparer.Ordinal);
    private readonly HttpClient _http = StoreDownloader.CreateHttpClient();
    private readonly Stopwatch _clock = new();
    private readonly Random _random;
    private readonly object _randomLock = new();

    /// <summary>Creates a simulator; call <see cref="PrepareAsync"/> before <see cref="RunAsync"/>.</summary>
    public FleetSimulator(SimulationOptions options, Action<string>? log = null)
    {
        options.Validate();
        _options = options;
        _log = log ?? (_ => { });
        _installed = new long[options.Devices];
        _random = options.Seed is { } s ? new Random(s) : new Random();
    }

    /// <summary>The devices (after <see cref="PrepareAsync"/>).</summary>
    public IReadOnlyList<SimulatedDevice> Devices => _devices;

    /// <summary>Fleet-wide counters.</summary>
    public FleetCounters Counters { get; } = new();

    /// <summary>Called with (device id, report) whenever the node acknowledges a completion report.</summary>
    public Action<string, CompletionReport>? CompletionAcknowledged { get; init; }

    /// <summary>Called with (device id, answer) whenever the node answers a check-in (the node journals every answered check-in).</summary>
    public Action<string, CheckInResponse>? CheckInAcknowledged { get; init; }

    /// <summary>Device id of device number <paramref name="index"/>.</summary>
    public string DeviceId(int index) => $"{_options.IdPrefix}{index:D5}";

    /// <summary>
    /// Opens or creates every device folder and provisions devices whose hidden zone has no credential, asking
    /// <paramref name="credentialFor"/> for a secret (normally the node's admin API).
    /// </summary>
    public async Task PrepareAsync(Func<string, CancellationToken, Task<string>> credentialFor, CancellationToken ct)
    {
        Directory.CreateDirectory(_options.Root);
        for (var i = _devices.Count; i < _options.Devices; i++)
        {
            _devices.Add(SimulatedDevice.Open(Path.Combine(_options.Root, DeviceId(i)), DeviceId(i), _options.Product, _options.Gateway,
                _options.TrustRoot, _options.Download));
        }
        var provisioned = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, _devices.Count), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct },
            async (i, token) =>
            {
                var d = _devices[i];
                if (!d.HasCredential)
                {
                    d.Provision(await credentialFor(d.DeviceId, token), _options.ContentKey, _options.TrustRoot);
                    Interlocked.Increment(ref provisioned);
                }
                _installed[i] = d.InstalledVersionId;
            });
        _log($"{_devices.Count} device(s) ready under {Path.GetFullPath(_options.Root)} ({provisioned} newly provisioned)");
    }

    /// <summary>The fleet now.</summary>
    public FleetSnapshot Snapshot()
    {
        var versions = new Dictionary<long, int>();
        for (var i = 0; i < _devices.Count; i++)
        {
            var v = Volatile.Read(ref _installed[i]);
            versions[v] = versions.GetValueOrDefault(v) + 1;
        }
        return new FleetSnapshot(_clock.Elapsed.TotalSeconds, _devices.Count, versions, Interlocked.Read(ref Counters.CheckIns),
            Interlocked.Read(ref Counters.Upgrades), Interlocked.Read(ref Counters.Repairs), Interlocked.Read(ref Counters.FailedAttempts),
            Interlocked.Read(ref Counters.Running), Interlocked.Read(ref Counters.BytesDownloaded));
    }

    /// <summary>Most frequent failure messages (device-specific parts kept), most frequent first.</summary>
    public IReadOnlyList<(string Reason, int Count)> TopFailures(int n) =>
        _failureReasons.OrderByDescending(kv => kv.Value).Take(n).Select(kv => (kv.Key, kv.Value)).ToList();

    /// <summary>
    /// Runs every device until <paramref name="ct"/> is cancelled, or (with <see cref="SimulationOptions.OneSessionPerDevice"/>)
    /// until each device has had one successful session. <paramref name="onProgress"/> gets a snapshot every
    /// <paramref name="progressEvery"/>; when <paramref name="stopWhen"/> returns true for a snapshot the run ends.
    /// </summary>
    public async Task<FleetSnapshot> RunAsync(TimeSpan progressEvery, Action<FleetSnapshot>? onProgress, Func<FleetSnapshot, bool>? stopWhen, CancellationToken ct)
    {
        if (_devices.Count == 0) throw new InvalidOperationException("call PrepareAsync before RunAsync");
        _clock.Start();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var gate = new SemaphoreSlim(_options.Concurrency);
        var loops = Enumerable.Range(0, _devices.Count).Select(i => Task.Run(() => DeviceLoopAsync(i, gate, stop.Token), CancellationToken.None)).ToList();
        var all = Task.WhenAll(loops);
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(progressEvery, CancellationToken.None));
            var snapshot = Snapshot();
            onProgress?.Invoke(snapshot);
            if (!stop.IsCancellationRequested && stopWhen?.Invoke(snapshot) == true) await stop.CancelAsync();
        }
        await all;
        _clock.Stop();
        return Snapshot();
    }

    private double NextDouble()
    {
        lock (_randomLock) return _random.NextDouble();
    }

    private TimeSpan Jittered(double seconds) =>
        TimeSpan.FromSeconds(seconds * (1 + _options.JitterFraction * (2 * NextDouble() - 1)));

    private async Task DeviceLoopAsync(int index, SemaphoreSlim gate, CancellationToken ct)
    {
        var d = _devices[index];
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(_options.StartSpreadSeconds * NextDouble()), ct);
            var failures = 0;
            while (!ct.IsCancellationRequested)
            {
                var (ok, wait) = await OneSessionAsync(index, d, gate, failures, ct);
                failures = ok ? 0 : failures + 1;
                if (ok && _options.OneSessionPerDevice) return;
                await Task.Delay(wait, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The run is over; an install cut short is finished or undone by the journal on the next session.
        }
    }

    private async Task<(bool Ok, TimeSpan Wait)> OneSessionAsync(int index, SimulatedDevice d, SemaphoreSlim gate, int failuresSoFar, CancellationToken ct)
    {
        await gate.WaitAsync(ct);
        Interlocked.Increment(ref Counters.Running);
        try
        {
            var credential = System.Text.Encoding.UTF8.GetString(d.Hidden.ReadRequired(Zones.HiddenItem.DeviceCredential));
            var gateway = new CountingGatewayClient(
                new HttpGatewayClient(_http, _options.Gateway, d.DeviceId, credential, TimeSpan.FromSeconds(_options.Download.RequestTimeoutSeconds)),
                Counters, d.DeviceId, CompletionAcknowledged, CheckInAcknowledged);
            // One attempt per turn: the session reports a failure itself; the wait before the next attempt is spent
            // outside the concurrency gate so a failing device does not hold a slot while it backs off.
            var config = d.Config with { Download = d.Config.Download with { MaxSessionAttempts = 1 } };
            var session = new UpdateSession(config, d.Layout, d.Hidden, gateway, _http);
            var result = await session.RunUntilSuccessAsync(ct);
            Volatile.Write(ref _installed[index], result.Installed.VersionId);
            if (result.Action == UpdateAction.Upgrade) Interlocked.Increment(ref Counters.Upgrades);
            if (result.Action == UpdateAction.Repair) Interlocked.Increment(ref Counters.Repairs);
            Interlocked.Add(ref Counters.BytesDownloaded, result.BytesDownloaded);
            Interlocked.Add(ref Counters.ChunksDownloaded, result.ChunksDownloaded);
            Interlocked.Add(ref Counters.ChunksReused, result.ChunksReused);
            // After an install the device checks in again soon (the server may have more for it, e.g. the next wave).
            return (true, Jittered(_options.CheckInIntervalSeconds));
        }
        catch (SessionFailedException e)
        {
            // A 429 (throttled, or retry_later before the announced retry time) is the server pacing the device, not a failed attempt.
            if (e.InnerException is not GatewayException { StatusCode: 429 }) Interlocked.Increment(ref Counters.FailedAttempts);
            _failureReasons.AddOrUpdate($"{e.Stage}: {e.Message}", 1, (_, n) => n + 1);
            if (_failureReasons.Count > 1000) _failureReasons.Clear();
            var backoff = new Backoff(TimeSpan.FromMilliseconds(_options.Download.BackoffBaseMilliseconds), TimeSpan.FromMilliseconds(_options.Download.BackoffCapMilliseconds));
            var wait = backoff.Delay(failuresSoFar);
            // A 429/503 from the gateway names its own wait; honour it as the real agent does (capped at the backoff cap).
            if (e.InnerException is GatewayException { RetryAfter: { } ra } && ra > wait)
                wait = ra < TimeSpan.FromMilliseconds(_options.Download.BackoffCapMilliseconds) ? ra : TimeSpan.FromMilliseconds(_options.Download.BackoffCapMilliseconds);
            return (false, wait);
        }
        finally
        {
            Interlocked.Decrement(ref Counters.Running);
            gate.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var d in _devices) d.Dispose();
        _http.Dispose();
    }
}
