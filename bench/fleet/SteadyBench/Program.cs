using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.CommandLine;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Protocol;

// Steady-state fleet benchmark (issue #22): bench/fleet/steady.sh N. See bench/results/fleet-steady.md.
//   SteadyBench N WORKDIR NODE_DLL           the benchmark (node as a child process, the baseline as another)
//   SteadyBench baseline PORT KEYS ANSWER    the minimal ASP.NET Core endpoint (HMAC check against N keys, fixed answer)
try
{
    return args.Length > 0 && args[0] == "baseline"
        ? await Baseline.RunAsync(new CommandGrammar("SteadyBench baseline", [], ["PORT", "KEYS", "ANSWER"]).Parse(args, 1))
        : args.Length > 0 && args[0] == "cadence"
        ? await Cadence.RunAsync(args[1..])
        : args.Length > 0 && args[0] == "sockstorm"
        ? await AgentSocketStorm.RunAsync(args[1..])
        : await Bench.RunAsync(new CommandGrammar("SteadyBench", [], ["N", "WORKDIR", "NODE_DLL"]).Parse(args));
}
catch (UsageException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

static class Env
{
    public static double Get(string name, double fallback) =>
        double.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : fallback;

    /// <summary>Whether the storm's device clients (its socket client, the cadence devices' process) run with tiered compilation (CLIENT_TIERED_COMPILATION, default 0).</summary>
    public static bool ClientTieredCompilation => Get("CLIENT_TIERED_COMPILATION", 0) > 0;

    /// <summary>CPUs the storm's device clients are confined to (STORM_CLIENT_CPUS, a taskset list such as <c>0</c>; unset: any).</summary>
    public static string? ClientCpus => Environment.GetEnvironmentVariable("STORM_CLIENT_CPUS") is { Length: > 0 } cpus ? cpus : null;

    /// <summary>
    /// How a device client process of the storm is started: <paramref name="command"/>, confined to <see cref="ClientCpus"/>
    /// when set (devices are other machines; on one shared machine the node otherwise competes with its own load for every
    /// core). A device runs an agent compiled ahead of time; a client process with tiered compilation recompiles its hot
    /// code in the background while the storm runs and takes cores the node needs, so by default each method is compiled
    /// once, fully optimized, at its first call (warm-up and the trivial-endpoint phase make those calls before the storm).
    /// </summary>
    public static ProcessStartInfo DeviceClient(params string[] command)
    {
        var cpus = ClientCpus;
        var psi = new ProcessStartInfo(cpus is null ? command[0] : "taskset") { UseShellExecute = false };
        foreach (var a in cpus is null ? command[1..] : ["-c", cpus, .. command]) psi.ArgumentList.Add(a);
        if (!ClientTieredCompilation) psi.Environment["DOTNET_TieredCompilation"] = "0";
        return psi;
    }
}

/// <summary>One check-in as every device sends it: JSON body with a fresh nonce, signed with the device's key.</summary>
static class CheckIns
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static long _sequence = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>The last sequence number signed here; another process signing for the same devices starts above it.</summary>
    public static long Sequence
    {
        get => Interlocked.Read(ref _sequence);
        set => Interlocked.Exchange(ref _sequence, value);
    }

    /// <summary>The published release every device reports as installed (version ID, inventory digest).</summary>
    public static (long VersionId, string Digest) Installed { get; set; } = (0, "empty");

    /// <summary>Like a real agent provisioned with a root document: it reads batch-signed directives (STEADY_BATCH=0: it does not).</summary>
    public static readonly bool BatchDirectives = Environment.GetEnvironmentVariable("STEADY_BATCH") != "0";

    /// <summary>The nonce a built request carries, for the verification of its answer.</summary>
    public static readonly HttpRequestOptionsKey<string> NonceKey = new("nonce");

    public static HttpRequestMessage Build(string deviceId, byte[] key)
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var body = JsonSerializer.SerializeToUtf8Bytes(new CheckInRequest("acme", Installed.VersionId, Installed.Digest, null, "bench-1.0", nonce,
            BatchDirectives: BatchDirectives ? true : null), Json);
        var path = $"/v1/devices/{deviceId}/check-in";
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var parameter = DeviceRequestSignature.Sign(key, "POST", path, deviceId, Interlocked.Increment(ref _sequence),
            DateTimeOffset.UtcNow.ToUnixTimeSeconds(), body);
        request.Headers.Authorization = new AuthenticationHeaderValue(DeviceRequestSignature.Scheme, parameter);
        request.Options.Set(NonceKey, nonce);
        return request;
    }
}

/// <summary>
/// Verifies a sample of the node's answers as an agent would (one in <see cref="Every"/>): the directive's signature
/// against the node's director key, for a batch-signed one the inclusion proof of its payload, and that it is bound to
/// the device and the nonce sent. Off until <see cref="Use"/> names the key (the baseline's answers are not the node's).
/// </summary>
static class AnswerSample
{
    public const int Every = 200;
    private static Dictionary<string, Orchestrator.ChunkStore.Keys.ReleasePublicKey>? _director;
    private static long _seen, _verified, _batched, _batchSizes, _failures;
    public static string? FirstFailure;

    public static void Use(string directorKeyFile)
    {
        using var key = Orchestrator.ChunkStore.Keys.ReleaseSigningKey.FromBytes(File.ReadAllBytes(directorKeyFile));
        _director = new() { [Orchestrator.ChunkStore.Trust.TrustKeyIds.Of(key.PublicKey)] = key.PublicKey };
    }

    public static void Stop() => _director = null;

    public static (long Verified, long Failures, double MeanBatchSize) Counts =>
        (Interlocked.Read(ref _verified), Interlocked.Read(ref _failures), _batched == 0 ? 0 : (double)_batchSizes / _batched);

    public static void Offer(string deviceId, HttpRequestMessage request, byte[] body)
    {
        var director = _director;
        if (director is null || Interlocked.Increment(ref _seen) % Every != 0 || !request.Options.TryGetValue(CheckIns.NonceKey, out var nonce)) return;
        try
        {
            var response = JsonSerializer.Deserialize(body, ProtocolJsonContext.Default.CheckInResponse)!;
            var envelope = Orchestrator.ChunkStore.Trust.SignedEnvelope.Parse(Encoding.UTF8.GetBytes(response.Directive ?? ""),
                Orchestrator.ChunkStore.Trust.Directive.MaxBytes, "directive");
            var payload = envelope.PayloadBytes("directive");
            if (envelope.Batch is { } batch)
            {
                var (root, path) = Orchestrator.ChunkStore.Trust.DirectiveBatch.Decode(batch, "directive");
                if (envelope.CountValid(Orchestrator.ChunkStore.Trust.DirectiveBatch.SignedMessage(root, batch.Size), director) < 1)
                    throw new InvalidOperationException("the batch root is not signed by the node's director key");
                Orchestrator.ChunkStore.Trust.DirectiveBatch.CheckInclusion(payload, batch, root, path, "directive");
                Interlocked.Increment(ref _batched);
                Interlocked.Add(ref _batchSizes, batch.Size);
            }
            else if (envelope.CountValid(payload, director) < 1)
                throw new InvalidOperationException("the directive is not signed by the node's director key");
            var d = Orchestrator.ChunkStore.Trust.Directive.Parse(payload);
            if (d.DeviceId != deviceId || d.Nonce != nonce)
                throw new InvalidOperationException($"the directive is for {d.DeviceId} / nonce {d.Nonce}, not {deviceId} / {nonce}");
            Interlocked.Increment(ref _verified);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failures);
            FirstFailure ??= $"{deviceId}: {e.Message}";
        }
    }
}

sealed record Phase(string Name, int Requests, int Errors, double Seconds, double P50Ms, double P99Ms, Dictionary<int, int> Statuses)
{
    /// <summary>A fixed-rate phase's p99 without the requests due in its first 5 s (a storm's onset).</summary>
    public double? P99AfterFirst5sMs { get; init; }

    public double PerSecond => Requests / Seconds;
    public override string ToString() =>
        $"{Name}: {Requests} check-ins in {Seconds:0.0} s = {PerSecond:0} /s, p50 {P50Ms:0.0} ms, p99 {P99Ms:0.0} ms, errors {Errors} " +
        $"({string.Join(", ", Statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"))})";
}

sealed class Load(HttpClient http, string[] ids, byte[][] keys)
{
    /// <summary>The first answer body of each status other than 200, so a run's errors say which refusal they were.</summary>
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<int, string> FirstRefusals = new();

    private Task<(int Status, double Ms)> OneAsync(int device, long startTicks) => OneAsync(http, device, startTicks, null);

    // Status 0: no answer (connection refused, reset, or the client's timeout). refusals counts 429/503 answers that carry Retry-After.
    private async Task<(int Status, double Ms)> OneAsync(HttpClient client, int device, long startTicks, StrongBox<int>? refusals)
    {
        using var request = CheckIns.Build(ids[device], keys[device]);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            var body = await response.Content.ReadAsByteArrayAsync();
            var status = (int)response.StatusCode;
            if (status != 200) FirstRefusals.TryAdd(status, System.Text.Encoding.UTF8.GetString(body));
            else AnswerSample.Offer(ids[device], request, body);
            if (refusals is not null && status is 429 or 503 && response.Headers.RetryAfter is not null) Interlocked.Increment(ref refusals.Value);
            return (status, Stopwatch.GetElapsedTime(startTicks).TotalMilliseconds);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return (0, Stopwatch.GetElapsedTime(startTicks).TotalMilliseconds);
        }
    }

    /// <summary>
    /// Open loop at <paramref name="rate"/> on <paramref name="client"/> (its own connection limit), devices from
    /// <paramref name="firstDevice"/> on; a storm does not slow down when the node refuses. At most
    /// <paramref name="maxInFlight"/> requests are outstanding: beyond that a due check-in is counted as not sent, so the
    /// client's own queue never stands in for the node's. Returns the phase, the refusals that carried Retry-After, and
    /// the check-ins not sent.
    /// </summary>
    public async Task<(Phase Phase, int RefusedWithRetryAfter, int NotSent)> StormAsync(string name, HttpClient client, double rate, TimeSpan duration,
        int firstDevice, int maxInFlight)
    {
        var count = (int)(rate * duration.TotalSeconds);
        var tasks = new List<Task<(int Status, double Ms)>>(count);
        var refusals = new StrongBox<int>();
        var inFlight = 0;
        var notSent = 0;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i / rate * Stopwatch.Frequency);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000) await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            if (Volatile.Read(ref inFlight) >= maxInFlight) { notSent++; continue; }
            Interlocked.Increment(ref inFlight);
            tasks.Add(Run((firstDevice + i) % ids.Length, due));
        }
        var results = await Task.WhenAll(tasks);
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var statuses = results.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());
        return (Summarize(name, results.Select(r => r.Ms), [statuses], seconds), refusals.Value, notSent);

        async Task<(int, double)> Run(int device, long due)
        {
            try { return await OneAsync(client, device, due, refusals); }
            finally { Interlocked.Decrement(ref inFlight); }
        }
    }

    /// <summary>
    /// A storm of agents, as after an outage: the devices from <paramref name="firstDevice"/> on each start their first
    /// check-in at <paramref name="rate"/> devices per second (all of them within count / rate seconds) and behave as the
    /// agent does: never two check-ins of one device at once, a 429/503 with Retry-After waited out for exactly that long,
    /// a check-in without an answer retried after 5 s, done once answered 200 (its next check-in is a cadence later).
    /// Stops at <paramref name="limit"/>. Returns every check-in's phase, the refusals with Retry-After, the devices
    /// answered, and the seconds until the last of them was answered.
    /// </summary>
    public async Task<(Phase Phase, int RefusedWithRetryAfter, int Served, int Devices, double LastServedSeconds)> AgentStormAsync(string name,
        HttpClient client, double rate, int firstDevice, TimeSpan limit)
    {
        var devices = ids.Length - firstDevice;
        var refusals = new StrongBox<int>();
        var results = new System.Collections.Concurrent.ConcurrentBag<(int Status, double Ms)>();
        var served = 0;
        long lastServed = 0;
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, devices).Select(async i =>
        {
            var device = firstDevice + i;
            await Task.Delay(TimeSpan.FromSeconds(i / rate));
            while (Stopwatch.GetTimestamp() < end)
            {
                var sent = Stopwatch.GetTimestamp();
                var (status, ms, retryAfter) = await OneWithRetryAfterAsync(client, device, sent, refusals);
                results.Add((status, ms));
                if (status == 200)
                {
                    Interlocked.Increment(ref served);
                    InterlockedMax(ref lastServed, Stopwatch.GetTimestamp() - start);
                    return;
                }
                await Task.Delay(retryAfter ?? TimeSpan.FromSeconds(5));
            }
        }));
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var list = results.ToList();
        var statuses = list.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());
        return (Summarize(name, list.Select(r => r.Ms), [statuses], seconds), refusals.Value, served, devices, (double)lastServed / Stopwatch.Frequency);

        static void InterlockedMax(ref long target, long value)
        {
            for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
                if (Interlocked.CompareExchange(ref target, value, seen) == seen) return;
        }
    }

    private async Task<(int Status, double Ms, TimeSpan? RetryAfter)> OneWithRetryAfterAsync(HttpClient client, int device, long startTicks, StrongBox<int> refusals)
    {
        using var request = CheckIns.Build(ids[device], keys[device]);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            var body = await response.Content.ReadAsByteArrayAsync();
            var status = (int)response.StatusCode;
            if (status != 200) FirstRefusals.TryAdd(status, System.Text.Encoding.UTF8.GetString(body));
            else AnswerSample.Offer(ids[device], request, body);
            var retryAfter = status is 429 or 503 ? response.Headers.RetryAfter?.Delta : null;
            if (retryAfter is not null) Interlocked.Increment(ref refusals.Value);
            return (status, Stopwatch.GetElapsedTime(startTicks).TotalMilliseconds, retryAfter);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return (0, Stopwatch.GetElapsedTime(startTicks).TotalMilliseconds, null);
        }
    }

    /// <summary>Closed loop: <paramref name="concurrency"/> clients, each sends its next check-in when the last is answered.</summary>
    public async Task<Phase> ClosedAsync(string name, int concurrency, int? total, TimeSpan? duration)
    {
        var latencies = new List<double>[concurrency];
        var statuses = new Dictionary<int, int>[concurrency];
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async w =>
        {
            latencies[w] = [];
            statuses[w] = [];
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (total is { } t && i >= t) break;
                if (duration is { } d && clock.Elapsed >= d) break;
                var (status, ms) = await OneAsync(i % ids.Length, Stopwatch.GetTimestamp());
                latencies[w].Add(ms);
                statuses[w][status] = statuses[w].GetValueOrDefault(status) + 1;
            }
        }));
        return Summarize(name, latencies.SelectMany(l => l), statuses, clock.Elapsed.TotalSeconds);
    }

    /// <summary>When the last fixed-rate phase started (Stopwatch ticks), so other timings can say when in it they fell.</summary>
    public long PhaseStart { get; private set; }

    /// <summary>
    /// Open loop at a fixed rate: check-in i is due at start + i / rate whether or not earlier ones were answered, and its
    /// latency counts from when it was due (so a stalled node shows in the percentiles instead of slowing the client).
    /// </summary>
    public async Task<Phase> FixedRateAsync(string name, double rate, TimeSpan duration, int firstDevice)
    {
        var count = (int)(rate * duration.TotalSeconds);
        var tasks = new List<Task<(int Status, double Ms)>>(count);
        var start = PhaseStart = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i / rate * Stopwatch.Frequency);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000) await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            tasks.Add(OneAsync((firstDevice + i) % ids.Length, due));
        }
        var results = await Task.WhenAll(tasks);
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var statuses = results.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());
        // When in the phase its refusals and slowest answers were due: a burst at one moment is a stall, spread ones are load.
        var refused = Enumerable.Range(0, results.Length).Where(i => results[i].Status != 200).ToList();
        if (refused.Count > 0)
            Console.WriteLine($"{name}: {refused.Count} not 200, due from {refused[0] / rate:0.00} s to {refused[^1] / rate:0.00} s into the phase");
        var slowest = Enumerable.Range(0, results.Length).OrderByDescending(i => results[i].Ms).Take(5);
        Console.WriteLine($"{name}: slowest {string.Join(", ", slowest.Select(i => $"{results[i].Ms:0} ms due at {i / rate:0.00} s"))}");
        // A storm's onset (every storm connection's first request at once) against the rest of the phase.
        var afterOnset = Summarize(name, results.Skip((int)(5 * rate)).Select(r => r.Ms), [], seconds);
        var slowestAfter = Enumerable.Range(0, results.Length).Skip((int)(5 * rate)).OrderByDescending(i => results[i].Ms).Take(8);
        Console.WriteLine($"{name}: due after its first 5 s: p50 {afterOnset.P50Ms:0.0} ms, p99 {afterOnset.P99Ms:0.0} ms; slowest " +
                          string.Join(", ", slowestAfter.Select(i => $"{results[i].Ms:0} ms due at {i / rate:0.00} s")));
        return Summarize(name, results.Select(r => r.Ms), [statuses], seconds) with { P99AfterFirst5sMs = afterOnset.P99Ms };
    }

    private static Phase Summarize(string name, IEnumerable<double> latencies, IEnumerable<Dictionary<int, int>> statuses, double seconds)
    {
        var sorted = latencies.Order().ToArray();
        var merged = new Dictionary<int, int>();
        foreach (var s in statuses) foreach (var (k, v) in s) merged[k] = merged.GetValueOrDefault(k) + v;
        double Pct(double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return new Phase(name, sorted.Length, merged.Where(s => s.Key != 200).Sum(s => s.Value), seconds, Pct(0.50), Pct(0.99), merged);
    }
}

sealed class NodeProcess(string dll, string work, int port, string tokenSha) : IAsyncDisposable
{
    private Process? _process;
    public int Pid => _process!.Id;
    public bool Alive => _process is { HasExited: false };
    public string Url => $"http://127.0.0.1:{port}";

    public async Task StartAsync(HttpClient http)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        foreach (var a in new[]
                 {
                     $"--Urls={Url}", $"--Node:DataDirectory={work}/data", $"--Node:StoreRoot={work}/store", "--Node:Port=0",
                     "--Admin:Tokens:0:Name=bench", $"--Admin:Tokens:0:Sha256={tokenSha}", "--Admin:Tokens:0:Scopes:0=read",
                     "--Admin:Tokens:0:Scopes:1=operate", "--Logging:LogLevel:Default=Warning",
                 }) psi.ArgumentList.Add(a);
        // The node's own environment (NODE_ENV), so the clients in this process and the cadence process keep theirs.
        foreach (var (name, value) in NodeEnvironment.FromNodeEnv()) psi.Environment[name] = value;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("node: " + e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("node: " + e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"node exited with {_process.ExitCode}");
            try { using var r = await http.GetAsync($"{Url}/health/ready"); if (r.IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("node not ready in 2 min");
            await Task.Delay(200);
        }
    }

    public long RssBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return 0;
    }

    /// <summary>Stops the node as an operator would (SIGTERM: coordinated shutdown) and waits.</summary>
    public async Task StopAsync()
    {
        if (_process is null || _process.HasExited) return;
        using (var kill = Process.Start("kill", ["-TERM", Pid.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { _process.Kill(); await _process.WaitForExitAsync(); }
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}

static class Bench
{
    // The sum of a metric's series on a /metrics page (every line that starts with its name and contains the label, if
    // one is given), as the Prometheus exporter writes them: the value is the line's last field.
    static double SumMetric(string[] lines, string metric, string label = "") =>
        lines.Where(l => l.StartsWith(metric, StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    static async Task<string[]> MetricLinesAsync(HttpClient http, string url) => (await http.GetStringAsync(url + "/metrics")).Split('\n');

    static async Task<(double Reads, double CheckIns, double WithoutActor)> MetricsAsync(HttpClient http, string url)
    {
        var lines = await MetricLinesAsync(http, url);
        return (SumMetric(lines, "orch_gateway_credential_db_reads_total"), SumMetric(lines, "orch_gateway_checkins_total"),
            SumMetric(lines, "orch_gateway_checkins_answered_without_actor_total"));
    }

    static async Task<(double Signatures, double Directives)> DirectorMetricsAsync(HttpClient http, string url)
    {
        var lines = await MetricLinesAsync(http, url);
        return (SumMetric(lines, "orch_director_batch_signatures_total"), SumMetric(lines, "orch_director_batched_directives_total"));
    }

    // orch_gateway_throttled_total by its limit label: which admission rule refused the storm's check-ins.
    static async Task<Dictionary<string, double>> AdmissionMetricsAsync(HttpClient http, string url)
    {
        var text = await http.GetStringAsync(url + "/metrics");
        var result = new Dictionary<string, double>();
        foreach (var l in text.Split('\n').Where(l => l.StartsWith("orch_gateway_throttled_total", StringComparison.Ordinal)))
        {
            var at = l.IndexOf("limit=\"", StringComparison.Ordinal);
            var label = at < 0 ? "?" : l[(at + 7)..l.IndexOf('"', at + 7)];
            result[label] = result.GetValueOrDefault(label) + double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return result;
    }

    // The runtime's view after its last GC (System.Runtime meter), in MiB: committed memory, and heap size and
    // fragmentation per generation (one series per gc_heap_generation label).
    static async Task<string> GcMetricsAsync(HttpClient http, string url)
    {
        var lines = await MetricLinesAsync(http, url);
        string Get(string metric, string label)
        {
            var values = lines.Where(l => l.StartsWith(metric, StringComparison.Ordinal)).Select(l =>
            {
                var at = l.IndexOf("gc_heap_generation=\"", StringComparison.Ordinal);
                var generation = at < 0 ? "" : l[(at + 20)..l.IndexOf('"', at + 20)] + " ";
                return $"{generation}{double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture) / 1048576.0:0.0}";
            }).ToList();
            return values.Count == 0 ? $"{label} ?" : $"{label} {string.Join(" ", values)} MiB";
        }
        var trims = SumMetric(lines, "orch_node_memory_trims_total");
        return string.Join(", ", $"node's memory trims {trims}", Get("orch_node_memory_trim_released_bytes_total", "given back"),
            Get("dotnet_gc_last_collection_memory_committed_size", "GC committed"),
            Get("dotnet_gc_last_collection_heap_size", "heap"),
            Get("dotnet_gc_last_collection_heap_fragmentation_size", "fragmentation"));
    }

    // The node's total GC pause and its collections by generation so far (System.Runtime meter).
    static string GcPausesBetween(string phase, (double PauseSeconds, double Gen0, double Gen1, double Gen2) before,
        (double PauseSeconds, double Gen0, double Gen1, double Gen2) after) =>
        $"node's GC during {phase}: paused {after.PauseSeconds - before.PauseSeconds:0.000} s in " +
        $"{after.Gen0 - before.Gen0} gen0, {after.Gen1 - before.Gen1} gen1, {after.Gen2 - before.Gen2} gen2 collections";

    static async Task<(double PauseSeconds, double Gen0, double Gen1, double Gen2)> GcPausesAsync(HttpClient http, string url)
    {
        var lines = await MetricLinesAsync(http, url);
        return (SumMetric(lines, "dotnet_gc_pause_time_seconds_total"), SumMetric(lines, "dotnet_gc_collections_total", "gc_heap_generation=\"gen0\""),
            SumMetric(lines, "dotnet_gc_collections_total", "gc_heap_generation=\"gen1\""), SumMetric(lines, "dotnet_gc_collections_total", "gc_heap_generation=\"gen2\""));
    }

    static async Task<long> LiveActorsAsync(HttpClient http, string url)
    {
        return (long)SumMetric(await MetricLinesAsync(http, url), "orch_device_actors_live");
    }

    // Waits until the node's live device actors have passivated: at most 1 % of the fleet (at least 16) left live and
    // no fall for 5 s, or none left; at most `limit`. The wave can start late (IdlePassivateAfter after the warm
    // check-ins), so a gauge that has not started falling is not settled.
    static async Task<(double Seconds, long Live)> SettleAsync(HttpClient http, string url, long devices, TimeSpan limit)
    {
        var floor = Math.Max(16, devices / 100);
        var clock = Stopwatch.StartNew();
        var live = await LiveActorsAsync(http, url);
        var lowest = live;
        var sinceFall = Stopwatch.StartNew();
        while (live > 0 && (live > floor || sinceFall.Elapsed < TimeSpan.FromSeconds(5)) && clock.Elapsed < limit)
        {
            await Task.Delay(500);
            live = await LiveActorsAsync(http, url);
            if (live < lowest) { lowest = live; sinceFall.Restart(); }
        }
        return (clock.Elapsed.TotalSeconds, live);
    }

    // A full blocking GC in the node (dotnet-gcdump induces one) before RSS is read; the dump also says which types hold
    // the heap and how many bytes of objects are live, which tells the heap from the rest of RSS.
    static async Task<string?> FullGcAsync(int pid, string output)
    {
        var tool = Environment.GetEnvironmentVariable("GCDUMP");
        if (string.IsNullOrEmpty(tool) || !File.Exists(tool)) return null;
        using var p = Process.Start(new ProcessStartInfo(tool, ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "-o", output]) { RedirectStandardOutput = true })!;
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return p.ExitCode == 0 ? output : null;
    }

    // Bytes of live objects in a dump ("N  GC Heap bytes", the first line of dotnet-gcdump's report); -1 when unknown.
    static async Task<long> LiveHeapBytesAsync(string? dump)
    {
        var tool = Environment.GetEnvironmentVariable("GCDUMP");
        if (dump is null || string.IsNullOrEmpty(tool)) return -1;
        using var p = Process.Start(new ProcessStartInfo(tool, ["report", dump]) { RedirectStandardOutput = true })!;
        var report = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        foreach (var line in report.Split('\n'))
            if (line.Contains("GC Heap bytes", StringComparison.Ordinal)
                && long.TryParse(line.Trim().Split(' ')[0].Replace(",", "", StringComparison.Ordinal), NumberStyles.None, CultureInfo.InvariantCulture, out var bytes))
                return bytes;
        return -1;
    }

    // RSS once it has stopped falling after a GC: the runtime hands freed regions back to the kernel over the following
    // seconds, so a read taken at once can count memory the node no longer holds. Sampled every 500 ms, at most 15 s.
    static async Task<(long Settled, long AtOnce, double Seconds)> SettledRssAsync(NodeProcess node)
    {
        var clock = Stopwatch.StartNew();
        var atOnce = node.RssBytes();
        var lowest = atOnce;
        var sinceFall = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(15) && sinceFall.Elapsed < TimeSpan.FromSeconds(3))
        {
            await Task.Delay(500);
            var rss = node.RssBytes();
            if (rss < lowest - 1_048_576) { lowest = rss; sinceFall.Restart(); }
        }
        return (lowest, atOnce, clock.Elapsed.TotalSeconds);
    }

    // The node's anonymous and file-backed resident memory (kB lines of /proc/PID/smaps_rollup), for the results' notes.
    static string MemoryBreakdown(int pid)
    {
        try
        {
            var fields = File.ReadLines($"/proc/{pid}/smaps_rollup")
                .Where(l => l.StartsWith("Anonymous:", StringComparison.Ordinal) || l.StartsWith("Rss:", StringComparison.Ordinal))
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(f => $"{f[0]} {long.Parse(f[1], CultureInfo.InvariantCulture) / 1024.0:0.0} MiB");
            return string.Join(", ", fields);
        }
        catch (IOException) { return "smaps_rollup unreadable"; }
    }

    public static async Task<int> RunAsync(ParsedArguments args)
    {
        var n = (int)args.PositionalLong(0, 0, 1, 10_000_000);
        var work = args.Positionals[1];
        var nodeDll = args.Positionals[2];
        var concurrency = (int)Env.Get("CONCURRENCY", 64);
        var maxSeconds = Env.Get("MAX_SECONDS", 20);
        var fixedSeconds = Env.Get("FIXED_SECONDS", 120);
        var rate = Env.Get("RATE", n / 300.0);
        Directory.CreateDirectory(work);
        var token = "steady-bench-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var tokenSha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var port = FreePort();
        // A small release, published before the node starts; every device reports it installed.
        var tree = Path.Combine(work, "release");
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        File.WriteAllBytes(Path.Combine(tree, "bin", "app"), RandomNumberGenerator.GetBytes(24_000));
        File.WriteAllText(Path.Combine(tree, "README"), "steady\n");
        var keysFolder = Orchestrator.ChunkStore.Keys.KeyFiles.Generate(Path.Combine(work, "keys"));
        using (var signing = Orchestrator.ChunkStore.Keys.KeyFiles.LoadSigningKey(keysFolder.Directory))
        {
            var release = new Orchestrator.ChunkStore.Publishing.Publisher(
                    Orchestrator.ChunkStore.Storage.FileSystemStore.Open(Path.Combine(work, "store"), create: true),
                    Orchestrator.ChunkStore.Keys.KeyFiles.LoadContentKey(keysFolder.Directory), signing)
                .Publish(new Orchestrator.ChunkStore.Publishing.PublishRequest("acme", "1.0", tree));
            CheckIns.Installed = (release.VersionId, release.InventoryDigest);
        }
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 4, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
            { Timeout = TimeSpan.FromSeconds(30) };
        await using var node = new NodeProcess(nodeDll, work, port, tokenSha);
        await node.StartAsync(http);
        await Task.Delay(3000);
        var gcEmpty = await FullGcAsync(node.Pid, Path.Combine(work, "empty.gcdump"));
        var (rssEmpty, rssEmptyAtOnce, _) = await SettledRssAsync(node);
        var heapEmpty = await LiveHeapBytesAsync(gcEmpty);
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}; node up, RSS {rssEmpty / 1048576.0:0.0} MiB settled " +
                          $"({rssEmptyAtOnce / 1048576.0:0.0} at once; full GC: {gcEmpty is not null}), live heap {heapEmpty / 1048576.0:0.0} MiB; {MemoryBreakdown(node.Pid)}; {await GcMetricsAsync(http, node.Url)}");

        // Provision: one request, the credentials streamed back.
        var provision = Stopwatch.StartNew();
        var ids = new string[n];
        var keys = new byte[n][];
        var secrets = new string[n];
        using (var req = new HttpRequestMessage(HttpMethod.Post, $"{node.Url}/admin/v1/devices/provision-batch")
               { Content = JsonContent.Create(new DeviceBatchProvisionRequest("steady-", n)) })
        {
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var longHttp = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
            using var res = await longHttp.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            res.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await res.Content.ReadAsStreamAsync());
            var i = 0;
            while (await reader.ReadLineAsync() is { } line)
            {
                var l = JsonSerializer.Deserialize<DeviceProvisionLine>(line, CheckIns.Json)!;
                if (l.DeviceId is null) { if (!l.Done) throw new InvalidOperationException(line); break; }
                ids[i] = l.DeviceId; secrets[i] = l.Secret!; keys[i] = DeviceRequestSignature.DeriveRequestKey(l.Secret!); i++;
            }
            if (i != n) throw new InvalidOperationException($"{i} of {n} credentials received");
        }
        var provisionSeconds = provision.Elapsed.TotalSeconds;
        Console.WriteLine($"provisioned {n} devices in {provisionSeconds:0.0} s = {n / provisionSeconds:0} /s");
        Console.WriteLine($"node's environment: {string.Join(' ', NodeEnvironment.FromNodeEnv().Select(p => $"{p.Key}={p.Value}"))}; " +
                          $"the baseline's: {string.Join(' ', NodeEnvironment.ForBaseline().Select(p => $"{p.Key}={p.Value}"))}");

        using var nodeHttp = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 4, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
            { BaseAddress = new Uri(node.Url), Timeout = TimeSpan.FromSeconds(30) };
        AnswerSample.Use(Path.Combine(work, "data", "director.key"));
        var load = new Load(nodeHttp, ids, keys);
        var phases = new List<Phase>();
        var warm = await load.ClosedAsync("warm (first check-in of every device)", concurrency, n, null);
        phases.Add(warm); Console.WriteLine(warm);
        // The issue's maximum is of check-ins "with nothing to do": an idle fleet. Right after the warm phase it is not idle
        // yet: every actor the warm phase woke passivates IdlePassivateAfter after its answer, inside this phase. So the
        // maximum is measured twice: at once (during that passivation wave, reported as checkinsPerSecondDuringWave) and
        // after the node's live-actor gauge has settled (checkinsPerSecond).
        var wave = await load.ClosedAsync($"max during the passivation wave (closed loop, {concurrency} clients, right after warm)", concurrency, null,
            TimeSpan.FromSeconds(maxSeconds));
        phases.Add(wave); Console.WriteLine(wave);
        var liveAtWaveEnd = await LiveActorsAsync(http, node.Url);
        var (settleSeconds, liveSettled) = await SettleAsync(http, node.Url, n, TimeSpan.FromSeconds(Env.Get("SETTLE_MAX_SECONDS", 300)));
        Console.WriteLine($"passivation wave: {liveAtWaveEnd} live device actors after the first max phase, {liveSettled} after {settleSeconds:0.0} s more " +
                          "(settled: at most 1 % of the fleet live and no fall for 5 s, or the wait's limit)");
        var max = await load.ClosedAsync($"max (closed loop, {concurrency} clients, idle fleet: passivation settled)", concurrency, null,
            TimeSpan.FromSeconds(maxSeconds));
        phases.Add(max); Console.WriteLine(max);
        var liveAfterMax = await LiveActorsAsync(http, node.Url);
        Console.WriteLine($"live device actors after the idle max phase: {liveAfterMax}");
        var maxSignatures = await DirectorMetricsAsync(http, node.Url);
        Console.WriteLine($"director: {maxSignatures.Directives} batch-signed directives under {maxSignatures.Signatures} signatures so far " +
                          $"(mean batch {maxSignatures.Directives / Math.Max(1, maxSignatures.Signatures):0.00})");

        // Capture one answer for the baseline to send (same bytes, same content type).
        byte[] answer;
        using (var one = CheckIns.Build(ids[0], keys[0]))
        using (var res = await nodeHttp.SendAsync(one)) answer = await res.Content.ReadAsByteArrayAsync();

        var before = await MetricsAsync(http, node.Url);
        // The idle fast path's share of the check-ins so far (warm and max phases): answered by the gateway, no actor.
        Console.WriteLine($"answered without the device actor: {before.WithoutActor} of {before.CheckIns} check-ins before the fixed-rate phase");
        // Devices on a cadence were last answered a cadence ago, but the closed-loop phases answered every device in the
        // last seconds, which makes each an early device to the node's admission (Admission:EarlyWithinSeconds, 60 s):
        // refused at once while 64 check-ins are in, so any pause of the node (a full GC, a memory trim) would refuse the
        // phase's devices as if they were a storm. The phase starts once the latest of those answers is that old.
        var cadenceGap = TimeSpan.FromSeconds(Env.Get("CADENCE_GAP_SECONDS", 61));
        await Task.Delay(cadenceGap);
        Console.WriteLine($"fixed-rate phase starts {cadenceGap.TotalSeconds:0} s after the last closed-loop check-in (CADENCE_GAP_SECONDS): " +
                          (cadenceGap.TotalSeconds > 60 ? "its devices are on their cadence, not early" : "its devices are early") + " to the node (Admission:EarlyWithinSeconds 60 s)");
        var gcBefore = await GcPausesAsync(http, node.Url);
        var cadenceCpu0 = ProcCpu.Seconds(node.Pid);
        var cadenceClock = Stopwatch.StartNew();
        var fixedRate = await load.FixedRateAsync($"fixed rate {rate:0.#}/s", rate, TimeSpan.FromSeconds(fixedSeconds), 0);
        // What the idle fleet costs the node at its cadence, background work included (timers, probes, journal polling):
        // the node's CPU over the phase, per check-in answered in it.
        var cadenceCores = (ProcCpu.Seconds(node.Pid) - cadenceCpu0) / cadenceClock.Elapsed.TotalSeconds;
        phases.Add(fixedRate); Console.WriteLine(fixedRate);
        Console.WriteLine($"node CPU during the fixed-rate phase: {cadenceCores:0.000} cores = {cadenceCores * 1e6 / rate:0} µs per check-in at {rate:0.#} /s");
        var gcAfter = await GcPausesAsync(http, node.Url);
        Console.WriteLine(GcPausesBetween("the fixed-rate phase", gcBefore, gcAfter));
        var after = await MetricsAsync(http, node.Url);
        var readsPerCheckin = (after.Reads - before.Reads) / Math.Max(1, after.CheckIns - before.CheckIns);
        Console.WriteLine($"credential database reads per check-in in the fixed-rate phase: {readsPerCheckin:0.0000} " +
                          $"({after.Reads - before.Reads} reads, {after.CheckIns - before.CheckIns} check-ins); whole run so far {after.Reads / Math.Max(1, after.CheckIns):0.0000}");
        var withoutActorShare = (after.WithoutActor - before.WithoutActor) / Math.Max(1, after.CheckIns - before.CheckIns);
        Console.WriteLine($"answered without the device actor in the fixed-rate phase: {withoutActorShare:P1}");

        var gcLoaded = await FullGcAsync(node.Pid, Path.Combine(work, "loaded.gcdump"));
        var (rssLoaded, rssLoadedAtOnce, settleRssSeconds) = await SettledRssAsync(node);
        var heapLoaded = await LiveHeapBytesAsync(gcLoaded);
        var bytesPerDevice = (rssLoaded - rssEmpty) / (double)n;
        var heapBytesPerDevice = heapLoaded < 0 || heapEmpty < 0 ? -1 : (heapLoaded - heapEmpty) / (double)n;
        Console.WriteLine($"RSS {rssLoaded / 1048576.0:0.0} MiB with {n} devices checked in, settled after {settleRssSeconds:0.0} s " +
                          $"({rssLoadedAtOnce / 1048576.0:0.0} at once; full GC: {gcLoaded is not null}): {bytesPerDevice:0} bytes per device over the empty node; " +
                          $"live heap {heapLoaded / 1048576.0:0.0} MiB ({heapBytesPerDevice:0} bytes per device); {MemoryBreakdown(node.Pid)}; {await GcMetricsAsync(http, node.Url)}");

        // Storm (STORM_SECONDS > 0): STORM_FACTOR x the node's measured maximum, open loop, from the devices after the first
        // half, while the first half keeps its cadence (the fixed rate) on its own client; RSS sampled every 500 ms.
        var stormSeconds = Env.Get("STORM_SECONDS", 0);
        Dictionary<string, object>? storm = null;
        if (stormSeconds > 0)
        {
            var factor = Env.Get("STORM_FACTOR", 3);
            var stormRate = factor * max.PerSecond;
            using var stormHttp = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 8192, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
                { BaseAddress = new Uri(node.Url), Timeout = TimeSpan.FromSeconds(30) };
            var half = n / 2;
            var agents = Environment.GetEnvironmentVariable("STORM_MODE") == "agents";
            // STORM_MODE=honour (with STORM_CLIENT=wrk): the wrk storm waits out every refusal's Retry-After, as agents do.
            var honour = Environment.GetEnvironmentVariable("STORM_MODE") == "honour";
            // STORM_CLIENT=sockets: the same pre-signed check-ins from agents' connections instead (AgentSocketStorm).
            var stormClient = Environment.GetEnvironmentVariable("STORM_CLIENT");
            if (honour && stormClient is not ("wrk" or "sockets"))
                throw new ArgumentException("STORM_MODE=honour needs STORM_CLIENT=wrk or sockets (STORM_MODE=agents is the .NET client's honouring storm).");
            // STORM_CLIENT=wrk (repeat mode only): the storm's check-ins signed before it starts and sent by wrk, so the
            // client's CPU does not cap what the node is offered; first the same wrk against the node's trivial
            // /health/live, for the client's own ceiling on these cores.
            WrkStorm? wrkStorm = null;
            WrkStorm.Result? wrkTrivial = null, wrkResult = null;
            if (!agents && stormClient is ("wrk" or "sockets"))
            {
                wrkStorm = await WrkStorm.PrepareAsync(work, ids, keys, half,
                    (long)Math.Min(Env.Get("STORM_PREBUILT_MAX", 3_000_000), stormRate * stormSeconds * Env.Get("STORM_PREBUILT_FACTOR", 1.5)));
                wrkTrivial = await wrkStorm.RunAsync(node.Url, TimeSpan.FromSeconds(Env.Get("STORM_TRIVIAL_SECONDS", 10)), "/health/live");
                Console.WriteLine($"wrk against the node's /health/live (trivial endpoint), same connections: {wrkTrivial.PerSecond:0} /s, p99 {wrkTrivial.P99Ms:0.0} ms, " +
                                  $"socket errors {wrkTrivial.SocketErrors}; the storm is to offer {stormRate:0} /s");
            }
            var peakRss = node.RssBytes();
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    try { peakRss = Math.Max(peakRss, node.RssBytes()); await Task.Delay(500, sampling.Token); }
                    catch (OperationCanceledException) { }
                }
            });
            // STORM_MODE=repeat (the default): the storm devices check in again and again, open loop, overlapping their own
            // check-ins and never waiting for Retry-After (a broken or hostile client). STORM_MODE=agents: every storm device
            // starts at once (at the storm's rate) and then behaves as the agent does (one check-in at a time, Retry-After
            // honoured) until answered or STORM_AGENT_SECONDS (150) pass; the cadence devices are measured as long.
            var stormWindow = agents ? TimeSpan.FromSeconds(Env.Get("STORM_AGENT_SECONDS", 150)) : TimeSpan.FromSeconds(stormSeconds);
            var stormName = agents ? $"agent storm: {n - half} devices starting at {stormRate:0}/s ({factor:0.#}x max)" : $"storm {stormRate:0}/s ({factor:0.#}x max)";
            // CPU over the storm window: the node's, the client's (wrk), and the whole machine's (other work shares the cores),
            // from the moment both clients are ready (below).
            var (nodeCpu0, machineCpu0, stormClock) = (0.0, 0.0, new Stopwatch());
            // Read when the storm's client ends, not after the cadence process (which starts and exits on its own clock).
            var (nodeCpu, machineCpu, stormWall) = (0.0, 0.0, 0.0);
            // The socket storm starts when the cadence devices' process is ready too (both have read their input and warmed up).
            var stormReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stormGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stormTask = wrkStorm is not null
                ? wrkStorm.RunAsync(node.Url, stormWindow, honour: honour, ready: stormReady, go: stormGo.Task).ContinueWith(t =>
                    {
                        (nodeCpu, machineCpu, stormWall) = (ProcCpu.Seconds(node.Pid) - nodeCpu0, ProcCpu.MachineBusySeconds() - machineCpu0, stormClock.Elapsed.TotalSeconds);
                        wrkResult = t.Result;
                        return (Phase: WrkStorm.ToPhase($"wrk storm{(honour ? " honouring Retry-After" : "")}, closed loop on {wrkStorm.Connections} connections " +
                                                        $"(attempts {t.Result.PerSecond:0}/s = {t.Result.PerSecond / max.PerSecond:0.00}x the maximum; 3x would be {stormRate:0}/s)", t.Result),
                            RefusedWithRetryAfter: (int)t.Result.RetryAfter, NotSent: 0, Served: -1, LastServed: -1.0);
                    }, TaskScheduler.Default)
                : agents
                ? load.AgentStormAsync(stormName, stormHttp, stormRate, half, stormWindow)
                    .ContinueWith(t => (t.Result.Phase, t.Result.RefusedWithRetryAfter, NotSent: 0, Served: t.Result.Served, LastServed: t.Result.LastServedSeconds), TaskScheduler.Default)
                : load.StormAsync(stormName, stormHttp, stormRate, stormWindow, half, (int)Env.Get("STORM_MAX_IN_FLIGHT", 8192))
                    .ContinueWith(t => (t.Result.Phase, t.Result.RefusedWithRetryAfter, t.Result.NotSent, Served: -1, LastServed: -1.0), TaskScheduler.Default);
            // The cadence devices are measured by a process of their own: in this one, the storm's thousands of requests
            // saturate the thread pool and their delay would be counted as the node's.
            var cadenceKeys = Path.Combine(work, "cadence-keys.txt");
            // Not the devices the fixed-rate phase just answered (its first ones, from device 0): answered less than
            // Admission:EarlyWithinSeconds before the storm, they are early to the node, which refuses early devices while
            // it is saturated, as it should. The devices after them were last answered by the closed-loop phases, before the gap.
            var answeredLately = (int)Math.Min(fixedRate.Requests, half / 2);
            await File.WriteAllLinesAsync(cadenceKeys, ids[answeredLately..half].Select((id, i) => id + "," + secrets[answeredLately + i]));
            // STORM_CADENCE_NICE (e.g. -10, needs root): the cadence process runs at that CPU priority. The cadence devices are
            // other machines in a fleet; on one shared machine their client would otherwise wait for the cores the storm's
            // client and the node saturate, and that wait would be counted as the node's latency.
            var cadenceNice = (int)Env.Get("STORM_CADENCE_NICE", 0);
            var cadencePsi = Env.DeviceClient(cadenceNice == 0 ? ["dotnet"] : ["nice", "-n", cadenceNice.ToString(CultureInfo.InvariantCulture), "dotnet"]);
            (cadencePsi.RedirectStandardOutput, cadencePsi.RedirectStandardInput) = (true, true);
            cadencePsi.Environment["CADENCE_WAIT_FOR_GO"] = "1";
            foreach (var a in new[] { typeof(Bench).Assembly.Location, "cadence", node.Url, cadenceKeys, (rate / 2).ToString(CultureInfo.InvariantCulture),
                         stormWindow.TotalSeconds.ToString(CultureInfo.InvariantCulture), CheckIns.Installed.VersionId.ToString(CultureInfo.InvariantCulture), CheckIns.Installed.Digest,
                         (CheckIns.Sequence + 1).ToString(CultureInfo.InvariantCulture) })
                cadencePsi.ArgumentList.Add(a);
            using var cadenceProcess = Process.Start(cadencePsi)!;
            while (await cadenceProcess.StandardOutput.ReadLineAsync() is { } line && line != Cadence.ReadyLine) { }
            if (wrkStorm is not null) await stormReady.Task;
            // The storm's window, its CPU and its GC from here: both clients ready, neither reading files nor compiling.
            var stormGcBefore = await GcPausesAsync(http, node.Url);
            (nodeCpu0, machineCpu0) = (ProcCpu.Seconds(node.Pid), ProcCpu.MachineBusySeconds());
            stormClock.Start();
            stormGo.TrySetResult();
            await cadenceProcess.StandardInput.WriteLineAsync("go");
            await cadenceProcess.StandardInput.FlushAsync();
            var cadenceOut = (await cadenceProcess.StandardOutput.ReadToEndAsync()).Trim().Split('\n');
            await cadenceProcess.WaitForExitAsync();
            var cadence = JsonSerializer.Deserialize<Phase>(cadenceOut[^1])!;
            foreach (var line in cadenceOut[..^2]) Console.WriteLine("cadence process: " + line);
            // The cadence process signed FIRST_SEQUENCE + 1 .. + its requests; this process's next check-ins go above them.
            CheckIns.Sequence += cadence.Requests + 1;
            var (stormPhase, refusedWithRetryAfter, notSent, stormServed, lastServed) = await stormTask;
            sampling.Cancel();
            await sampler;
            Console.WriteLine(stormPhase);
            Console.WriteLine(cadence);
            var stormMetrics = await AdmissionMetricsAsync(http, node.Url);
            var stormGcAfter = await GcPausesAsync(http, node.Url);
            Console.WriteLine(GcPausesBetween("the storm", stormGcBefore, stormGcAfter));
            using var after1 = CheckIns.Build(ids[0], keys[0]);
            var alive = node.Alive && (await nodeHttp.SendAsync(after1)).IsSuccessStatusCode;
            Console.WriteLine($"storm: {refusedWithRetryAfter} refusals with Retry-After, {notSent} not sent (client cap), peak RSS {peakRss / 1048576.0:0.0} MiB, " +
                              $"node answering afterwards: {alive}" + (agents ? $"; {stormServed} of {n - half} storm devices answered, the last {lastServed:0.0} s after the storm began" : ""));
            Console.WriteLine($"node's refusals by rule: {string.Join(", ", stormMetrics.Select(m => $"{m.Key} {m.Value}"))}");
            // What the admission's busy rule read (Admission:BusyQueueWaitMilliseconds): the probe's waits and the value seen
            // on the request path for early devices, as cumulative buckets since the node started.
            foreach (var line in (await http.GetStringAsync(node.Url + "/metrics")).Split('\n')
                         .Where(l => l.StartsWith("orch_gateway_threadpool_queue_wait", StringComparison.Ordinal) || l.StartsWith("orch_gateway_loopback_request_wait", StringComparison.Ordinal) || l.StartsWith("orch_gateway_admission_queue_wait_seen", StringComparison.Ordinal)))
                Console.WriteLine("node: " + line);
            storm = new Dictionary<string, object>
            {
                ["stormMode"] = agents ? "agents" : "repeat",
                ["stormOfferedPerSecond"] = Math.Round(stormRate),
                ["stormSentPerSecond"] = Math.Round(stormPhase.PerSecond),
                ["stormStatuses"] = stormPhase.Statuses.ToDictionary(s => s.Key.ToString(CultureInfo.InvariantCulture), s => s.Value),
                ["stormRefusedWithRetryAfter"] = refusedWithRetryAfter,
                ["stormNotSent"] = notSent,
                ["stormCadenceP99Ms"] = Math.Round(cadence.P99Ms, 1),
                ["stormCadenceP50Ms"] = Math.Round(cadence.P50Ms, 1),
                ["stormCadenceP99AfterFirst5sMs"] = Math.Round(cadence.P99AfterFirst5sMs ?? -1, 1),
                ["stormCadenceErrors"] = cadence.Errors,
                ["stormCadenceNice"] = cadenceNice,
                ["stormClientsTieredCompilation"] = Env.ClientTieredCompilation,
                ["stormClientCpus"] = Env.ClientCpus ?? "any",
                ["stormCadenceFreshConnections"] = Env.Get("CADENCE_FRESH_CONNECTIONS", 1) > 0,
                ["stormCadenceStatuses"] = cadence.Statuses.ToDictionary(s => s.Key.ToString(CultureInfo.InvariantCulture), s => s.Value),
                ["stormPeakRssBytes"] = peakRss,
                ["stormRefusalsByRule"] = stormMetrics,
                ["stormNodeAlive"] = alive,
            };
            if (wrkResult is not null)
            {
                storm["stormClient"] = stormClient!;
                if (stormClient == "sockets") storm["stormInlineCompletions"] = WrkStorm.InlineCompletions;
                if (wrkResult.Connects > 0) (storm["stormConnects"], storm["stormClosedByServer"]) = (wrkResult.Connects, wrkResult.ClosedByServer);
                storm["stormMode"] = honour ? "honour" : "repeat";
                storm["stormConnections"] = wrkStorm!.Connections;
                storm["stormAttemptsPerMax"] = Math.Round(wrkResult.PerSecond / max.PerSecond, 2);
                storm["stormWaits"] = wrkResult.Waits;
                storm["stormWaitSeconds"] = Math.Round(wrkResult.WaitSeconds, 1);
                storm["stormTrivialPerSecond"] = Math.Round(wrkTrivial!.PerSecond);
                storm["stormSocketErrors"] = wrkResult.SocketErrors;
                storm["stormTimeouts"] = wrkResult.Timeouts;
                storm["stormWrapped"] = wrkResult.Wrapped;
                storm["stormP99Ms"] = Math.Round(wrkResult.P99Ms, 1);
                storm["stormMaxMs"] = Math.Round(wrkResult.MaxMs, 1);
                storm["stormNodeCores"] = Math.Round(nodeCpu / stormWall, 2);
                storm["stormClientCores"] = Math.Round(wrkResult.CpuSeconds / stormWall, 2);
                storm["stormMachineBusyCores"] = Math.Round(machineCpu / stormWall, 2);
                storm["stormNodeCpuMicrosecondsPerAttempt"] = Math.Round(nodeCpu * 1e6 / Math.Max(1, wrkResult.Requests), 1);
                Console.WriteLine($"storm CPU over {stormWall:0.0} s (cores of {Environment.ProcessorCount}): node {nodeCpu / stormWall:0.00}, wrk {wrkResult.CpuSeconds / stormWall:0.00}, " +
                                  $"whole machine busy {machineCpu / stormWall:0.00}; node CPU per storm attempt {nodeCpu * 1e6 / Math.Max(1, wrkResult.Requests):0.0} µs " +
                                  "(cadence devices' and other engineers' work included in the node's and the machine's)");
                Console.WriteLine($"wrk storm: {wrkResult.Timeouts} timeouts, {wrkResult.ConnectErrors + wrkResult.ReadErrors + wrkResult.WriteErrors} socket errors, " +
                                  $"{wrkResult.Wrapped} threads wrapped around (replays), storm latency p50 {wrkResult.P50Ms:0.0} ms p99 {wrkResult.P99Ms:0.0} ms max {wrkResult.MaxMs:0.0} ms; " +
                                  $"attempts {wrkResult.PerSecond:0} /s ({wrkResult.PerSecond / max.PerSecond:0.00}x the maximum) on {wrkStorm!.Connections} connections; " +
                                  $"Retry-After waits taken {wrkResult.Waits} ({wrkResult.WaitSeconds:0} s)");
            }
            if (agents)
            {
                storm["stormDevicesServed"] = stormServed;
                storm["stormDevices"] = n - half;
                storm["stormLastServedSeconds"] = Math.Round(lastServed, 1);
            }
        }

        // Cold: a restarted node recovers every device actor from the journal on its first check-in.
        await node.StopAsync();
        var restart = Stopwatch.StartNew();
        await node.StartAsync(http);
        var readySeconds = restart.Elapsed.TotalSeconds;
        Console.WriteLine($"restart: node ready {readySeconds:0.0} s after it was started (/health/ready)");
        var cold = await load.ClosedAsync("cold (first check-in after a node restart)", concurrency, n, null);
        phases.Add(cold); Console.WriteLine(cold);
        var coldMetrics = await MetricsAsync(http, node.Url);
        Console.WriteLine($"answered without the device actor in the cold phase: {coldMetrics.WithoutActor} of {coldMetrics.CheckIns} check-ins");
        // The maximum again in a second node process (this restarted one): a process settles in one of two speeds and
        // keeps it for a while (fleet-steady.md, session 22), so one process of each side is one draw. After a warm-up,
        // since the first process's maximum came after the warm, wave and settle phases.
        var warmUp2 = await load.ClosedAsync("second node process: warm-up (closed loop, not counted)", concurrency, null, TimeSpan.FromSeconds(10));
        Console.WriteLine(warmUp2);
        var max2 = await load.ClosedAsync($"max in a second node process (closed loop, {concurrency} clients, after the cold phase)", concurrency, null,
            TimeSpan.FromSeconds(maxSeconds));
        phases.Add(max2); Console.WriteLine(max2);
        AnswerSample.Stop();
        var sample = AnswerSample.Counts;
        var signatures = await DirectorMetricsAsync(http, node.Url);
        Console.WriteLine($"answers verified as an agent does (1 in {AnswerSample.Every}): {sample.Verified}, failures {sample.Failures}" +
                          $"{(AnswerSample.FirstFailure is { } f ? $" (first: {f})" : "")}; mean batch size in the sample {sample.MeanBatchSize:0.00}; " +
                          $"node since restart: {signatures.Directives} batch-signed directives under {signatures.Signatures} signatures");

        // Baseline: the minimal endpoint, same client, same devices, same answer bytes.
        var keysFile = Path.Combine(work, "keys.txt");
        await File.WriteAllLinesAsync(keysFile, ids.Select((id, i) => id + "," + secrets[i]));
        var answerFile = Path.Combine(work, "answer.json");
        await File.WriteAllBytesAsync(answerFile, answer);
        // One baseline process: started, ready, then measured by measure(its URL, a load on it).
        async Task<T> WithBaselineAsync<T>(Func<string, Load, Task<T>> measure)
        {
            var basePort = FreePort();
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false };
            psi.ArgumentList.Add(typeof(Bench).Assembly.Location);
            foreach (var a in new[] { "baseline", basePort.ToString(CultureInfo.InvariantCulture), keysFile, answerFile }) psi.ArgumentList.Add(a);
            foreach (var (name, value) in NodeEnvironment.ForBaseline()) psi.Environment[name] = value;
            using var baseline = Process.Start(psi)!;
            try
            {
                for (var i = 0; ; i++)
                {
                    try { using var r = await http.GetAsync($"http://127.0.0.1:{basePort}/ready"); if (r.IsSuccessStatusCode) break; }
                    catch (HttpRequestException) { }
                    if (i > 600) throw new TimeoutException("baseline not ready");
                    await Task.Delay(100);
                }
                using var baseHttp = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 4 }) { BaseAddress = new Uri($"http://127.0.0.1:{basePort}"), Timeout = TimeSpan.FromSeconds(30) };
                return await measure($"http://127.0.0.1:{basePort}", new Load(baseHttp, ids, keys));
            }
            finally
            {
                baseline.Kill();
                await baseline.WaitForExitAsync();
            }
        }
        // Interleaved: this node process and a baseline process alive together, each measured in turn for short windows on
        // the same client (node first in odd pairs, baseline first in even ones), so a change of the machine's speed during
        // the run weighs on both sides alike (fleet-steady.md, session 23). The ratio of their sums is ratioInterleaved.
        var pairs = (int)Env.Get("INTERLEAVE_PAIRS", 4);
        var window = TimeSpan.FromSeconds(Env.Get("INTERLEAVE_SECONDS", 10));
        var (nodeInterleaved, baseInterleaved) = await WithBaselineAsync(async (_, baseLoad) =>
        {
            Console.WriteLine(await baseLoad.ClosedAsync("interleaved: baseline warm-up (closed loop, not counted)", concurrency, null, TimeSpan.FromSeconds(10)));
            double nodeRequests = 0, nodeSeconds = 0, baseRequests = 0, baseSeconds = 0;
            for (var i = 0; i < pairs; i++)
            {
                foreach (var nodeTurn in i % 2 == 0 ? new[] { true, false } : [false, true])
                {
                    var phase = await (nodeTurn ? load : baseLoad).ClosedAsync(
                        $"{(nodeTurn ? "interleaved node" : "baseline interleaved")} window {i + 1} of {pairs} (closed loop, {concurrency} clients)", concurrency, null, window);
                    phases.Add(phase); Console.WriteLine(phase);
                    if (nodeTurn) { nodeRequests += phase.Requests; nodeSeconds += phase.Seconds; }
                    else { baseRequests += phase.Requests; baseSeconds += phase.Seconds; }
                }
            }
            return (nodeRequests / nodeSeconds, baseRequests / baseSeconds);
        });
        Console.WriteLine($"interleaved ({pairs} pairs of {window.TotalSeconds:0} s windows): node {nodeInterleaved:0} /s, baseline {baseInterleaved:0} /s, " +
                          $"ratio {nodeInterleaved / baseInterleaved:0.00}");
        await node.StopAsync();

        var (baseMax, signedMax) = await WithBaselineAsync(async (url, baseLoad) =>
        {
            var plain = await baseLoad.ClosedAsync($"baseline max (closed loop, {concurrency} clients)", concurrency, null, TimeSpan.FromSeconds(maxSeconds));
            phases.Add(plain); Console.WriteLine(plain);
            // The same endpoint plus the one piece of work the node must do per check-in that the issue's baseline does not:
            // an Ed25519 signature over a directive-sized payload holding the check-in's nonce (the baseline's /mode/sign).
            using (var on = await http.PostAsync($"{url}/mode/sign", null)) on.EnsureSuccessStatusCode();
            var signed = await baseLoad.ClosedAsync($"baseline + Ed25519 signature per check-in (closed loop, {concurrency} clients)", concurrency, null,
                TimeSpan.FromSeconds(maxSeconds));
            phases.Add(signed); Console.WriteLine(signed);
            return (plain, signed);
        });
        // A second baseline process, as the node's second: its maximum after a warm-up as long as the node's.
        var baseMax2 = await WithBaselineAsync(async (_, baseLoad) =>
        {
            Console.WriteLine(await baseLoad.ClosedAsync("second baseline process: warm-up (closed loop, not counted)", concurrency, null, TimeSpan.FromSeconds(10)));
            var plain = await baseLoad.ClosedAsync($"baseline max in a second process (closed loop, {concurrency} clients)", concurrency, null, TimeSpan.FromSeconds(maxSeconds));
            phases.Add(plain); Console.WriteLine(plain);
            return plain;
        });
        Console.WriteLine($"two processes of each side: node {max.PerSecond:0} and {max2.PerSecond:0} /s, baseline {baseMax.PerSecond:0} and {baseMax2.PerSecond:0} /s, " +
                          $"ratio of the sums {(max.PerSecond + max2.PerSecond) / (baseMax.PerSecond + baseMax2.PerSecond):0.00}");

        var errors = phases.Where(p => !p.Name.StartsWith("baseline", StringComparison.Ordinal)).Sum(p => p.Errors);
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
        var result = new Dictionary<string, object>
        {
            ["devices"] = n,
            ["checkinsPerSecond"] = Math.Round(max.PerSecond),
            ["checkinsPerSecondDuringWave"] = Math.Round(wave.PerSecond),
            ["ratioDuringWave"] = Math.Round(wave.PerSecond / baseMax.PerSecond, 2),
            ["ratioSignedDuringWave"] = Math.Round(wave.PerSecond / signedMax.PerSecond, 2),
            ["waveMaxP99Ms"] = Math.Round(wave.P99Ms, 1),
            ["liveActorsAfterWave"] = liveAtWaveEnd,
            ["liveActorsSettled"] = liveSettled,
            ["settleSeconds"] = Math.Round(settleSeconds, 1),
            ["liveActorsAfterMax"] = liveAfterMax,
            ["baselinePerSecond"] = Math.Round(baseMax.PerSecond),
            ["ratio"] = Math.Round(max.PerSecond / baseMax.PerSecond, 2),
            ["baselineSignedPerSecond"] = Math.Round(signedMax.PerSecond),
            ["ratioSigned"] = Math.Round(max.PerSecond / signedMax.PerSecond, 2),
            ["checkinsPerSecondSecondProcess"] = Math.Round(max2.PerSecond),
            ["baselinePerSecondSecondProcess"] = Math.Round(baseMax2.PerSecond),
            ["ratioTwoProcesses"] = Math.Round((max.PerSecond + max2.PerSecond) / (baseMax.PerSecond + baseMax2.PerSecond), 2),
            ["checkinsPerSecondInterleaved"] = Math.Round(nodeInterleaved),
            ["baselinePerSecondInterleaved"] = Math.Round(baseInterleaved),
            ["ratioInterleaved"] = Math.Round(nodeInterleaved / baseInterleaved, 2),
            ["rate"] = Math.Round(rate, 1),
            ["p99Ms"] = Math.Round(fixedRate.P99Ms, 1),
            ["p50Ms"] = Math.Round(fixedRate.P50Ms, 1),
            ["cadenceNodeCores"] = Math.Round(cadenceCores, 3),
            ["cadenceNodeCpuMicrosecondsPerCheckin"] = Math.Round(cadenceCores * 1e6 / rate),
            ["maxP99Ms"] = Math.Round(max.P99Ms, 1),
            ["warmCheckinsPerSecond"] = Math.Round(warm.PerSecond),
            ["coldCheckinsPerSecond"] = Math.Round(cold.PerSecond),
            ["coldP99Ms"] = Math.Round(cold.P99Ms, 1),
            ["coldReadySeconds"] = Math.Round(readySeconds, 1),
            ["rssBytes"] = rssLoaded,
            ["rssEmptyBytes"] = rssEmpty,
            ["bytesPerDevice"] = Math.Round(bytesPerDevice),
            ["rssAtOnceBytes"] = rssLoadedAtOnce,
            ["heapBytesPerDevice"] = Math.Round(heapBytesPerDevice),
            ["fullGcBeforeRss"] = gcLoaded is not null,
            ["credentialDbReadsPerCheckin"] = Math.Round(readsPerCheckin, 4),
            ["withoutActorShare"] = Math.Round(withoutActorShare, 4),
            ["coldWithoutActorShare"] = Math.Round(coldMetrics.WithoutActor / Math.Max(1, coldMetrics.CheckIns), 4),
            ["coldCredentialDbReadsPerCheckin"] = Math.Round(coldMetrics.Reads / Math.Max(1, coldMetrics.CheckIns), 4),
            ["provisionPerSecond"] = Math.Round(n / provisionSeconds),
            ["errors"] = errors,
            ["batchDirectives"] = CheckIns.BatchDirectives,
            ["answersVerified"] = sample.Verified,
            ["answerVerifyFailures"] = sample.Failures,
            ["sampleMeanBatchSize"] = Math.Round(sample.MeanBatchSize, 2),
            ["meanBatchSizeBeforeRestart"] = Math.Round(maxSignatures.Directives / Math.Max(1, maxSignatures.Signatures), 2),
            ["concurrency"] = concurrency,
            ["loadavg1"] = double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture),
        };
        if (storm is not null) foreach (var (k, v) in storm) result[k] = v;
        foreach (var (status, body) in Load.FirstRefusals.OrderBy(r => r.Key)) Console.WriteLine($"first answer with status {status}: {body}");
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }

    static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>
/// The baseline: what a check-in costs without the node's machinery. It checks the signature against the device's
/// stored request key (N keys in a dictionary), the timestamp, parses the JSON body, and answers with the node's bytes.
/// </summary>
static class Baseline
{
    public static async Task<int> RunAsync(ParsedArguments args)
    {
        var port = (int)args.PositionalLong(0, 0, 1, 65535);
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(args.Positionals[1]))
        {
            var parts = line.Split(',');
            keys[parts[0]] = DeviceRequestSignature.DeriveRequestKey(parts[1]);
        }
        var answer = File.ReadAllBytes(args.Positionals[2]);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/ready", () => Results.Ok());
        // After /mode/sign every answer also costs what the node's directive costs: one Ed25519 signature (the node's
        // key type and library) over a payload of a directive's size that holds the check-in's nonce.
        using var director = ReleaseSigningKey.Generate();
        var sign = false;
        app.MapPost("/mode/sign", () => { Volatile.Write(ref sign, true); return Results.Ok(); });
        app.MapPost("/v1/devices/{deviceId}/check-in", async (string deviceId, HttpContext ctx) =>
        {
            var header = ctx.Request.Headers.Authorization.ToString();
            if (!AuthenticationHeaderValue.TryParse(header, out var parsed) || parsed.Parameter is null
                || !DeviceRequestSignature.TryParse(parsed.Parameter, out var auth, out _)) return Results.StatusCode(401);
            if (Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - auth.Timestamp) > 300) return Results.StatusCode(401);
            using var buffer = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(buffer);
            var body = buffer.ToArray();
            var key = keys.GetValueOrDefault(auth.DeviceId);
            if (key is null || auth.DeviceId != deviceId
                || !DeviceRequestSignature.Verify(key, auth, "POST", ctx.Request.Path.ToUriComponent(), DeviceRequestSignature.BodyHash(body)))
                return Results.StatusCode(401);
            var request = JsonSerializer.Deserialize<CheckInRequest>(body, CheckIns.Json);
            if (request is null) return Results.StatusCode(400);
            if (Volatile.Read(ref sign))
            {
                var payload = Encoding.UTF8.GetBytes($"{{\"schema\":1,\"type\":\"directive\",\"deviceId\":\"{deviceId}\",\"nonce\":\"{request.Nonce}\",\"issuedUtc\":\"{DateTimeOffset.UtcNow:O}\"}}".PadRight(450));
                if (director.Sign(payload).Length != 64) return Results.StatusCode(500);
            }
            return Results.Bytes(answer, "application/json");
        });
        await app.RunAsync();
        return 0;
    }
}

/// <summary>
/// The devices on their cadence during a storm, in a process of their own: SteadyBench cadence URL KEYS RATE SECONDS
/// VERSION_ID DIGEST FIRST_SEQUENCE. Prints the phase, and as its last line the phase as JSON.
/// </summary>
static class Cadence
{
    /// <summary>The line this process prints once it is warmed up and waiting (CADENCE_WAIT_FOR_GO=1); a line on stdin starts it.</summary>
    public const string ReadyLine = "cadence-ready";

    public static async Task<int> RunAsync(string[] args)
    {
        var lines = File.ReadAllLines(args[1]).Select(l => l.Split(',')).ToArray();
        var ids = lines.Select(l => l[0]).ToArray();
        var keys = lines.Select(l => DeviceRequestSignature.DeriveRequestKey(l[1])).ToArray();
        CheckIns.Installed = (long.Parse(args[4], CultureInfo.InvariantCulture), args[5]);
        // The devices' last accepted sequence numbers were signed by the parent process: continue above them.
        CheckIns.Sequence = long.Parse(args[6], CultureInfo.InvariantCulture);
        var rate = double.Parse(args[2], CultureInfo.InvariantCulture);
        // CADENCE_FRESH_CONNECTIONS=1 (default): every check-in on a connection of its own, as a device checking in
        // minutes apart does; 0: a pool of kept-alive connections (the benchmark's cadence client before session 30). Each connect is timed apart from its request: a connect that
        // takes a second is a SYN the node's full listen backlog dropped and the kernel sent again, not the node's answer.
        var fresh = Env.Get("CADENCE_FRESH_CONNECTIONS", 1) > 0;
        var connects = new System.Collections.Concurrent.ConcurrentBag<(long Start, double Ms)>();
        var url = new Uri(args[0]);
        var target = SourceAddresses.NodeEndpoint(url);
        var source = SourceAddresses.ForCadence(target);
        using var http = new HttpClient(new SocketsHttpHandler
            {
                MaxConnectionsPerServer = 256,
                PooledConnectionLifetime = fresh ? TimeSpan.Zero : TimeSpan.FromMinutes(30),
                ConnectCallback = async (context, token) =>
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    var begun = Stopwatch.GetTimestamp();
                    try
                    {
                        SourceAddresses.Bind(socket, source);
                        await socket.ConnectAsync(target, token);
                    }
                    catch { socket.Dispose(); throw; }
                    connects.Add((begun, Stopwatch.GetElapsedTime(begun).TotalMilliseconds));
                    return new NetworkStream(socket, ownsSocket: true);
                },
            })
            { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
        var name = $"cadence {rate:0.#}/s during the storm (own process{(fresh ? ", a connection per check-in" : "")})";
        // Warmed up (a device's agent is compiled ahead of time; this client's code is compiled on first use, and tiered
        // compilation recompiles what runs hot): check-ins of the list's first device, which the measured phase leaves
        // out, and a pause for the runtime's background compiler. Then, when the parent runs it (CADENCE_WAIT_FOR_GO=1),
        // ready and waiting for the storm to start with it; otherwise its compiling takes the cores the node needs then.
        await new Load(http, ids[..1], keys[..1]).FixedRateAsync("cadence warm-up", 100, TimeSpan.FromSeconds(0.6), 0);
        await Task.Delay(TimeSpan.FromSeconds(1));
        var load = new Load(http, ids[1..], keys[1..]);
        connects.Clear();
        if (Environment.GetEnvironmentVariable("CADENCE_WAIT_FOR_GO") == "1")
        {
            Console.WriteLine(ReadyLine);
            Console.ReadLine();
        }
        var phase = await load.FixedRateAsync(name, rate, TimeSpan.FromSeconds(double.Parse(args[3], CultureInfo.InvariantCulture)), 0);
        var timed = connects.ToArray();
        var slowConnects = timed.Where(c => c.Ms >= 200).OrderBy(c => c.Start).ToArray();
        Console.WriteLine($"{name}: {timed.Length} connects, {slowConnects.Length} took 200 ms or more" +
                          (slowConnects.Length == 0 ? "" : ": " + string.Join(", ", slowConnects.Take(12).Select(c =>
                              $"{c.Ms:0} ms begun at {Stopwatch.GetElapsedTime(load.PhaseStart, c.Start).TotalSeconds:0.00} s"))));
        Console.WriteLine(phase);
        Console.WriteLine(JsonSerializer.Serialize(phase));
        return 0;
    }
}
