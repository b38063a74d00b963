using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.Messages.Protocol;

// Cold-start benchmark (issue #22): bench/fleet/cold.sh WORKDIR. Restarts a node on the data folder that
// `KEEP_WORK=1 bench/fleet/steady.sh N` left (its keys.txt holds every device's id and secret), ROUNDS times, and after
// each /health/ready runs two passes in which every device checks in once (closed loop, CONCURRENCY clients): the first
// is the cold phase of steady.sh, the second the same check-ins in the same process once it has served them, so the two
// differ only by what the process had to do the first time. Per pass: check-ins/s, p50/p99, the throughput of each
// second, the node's CPU seconds (user+system), the bytes it allocated (its System.Runtime meter) and the share answered
// without the actor. Node environment variables are
// passed as NODE_ENV="A=1 B=2" (e.g. NODE_ENV="DOTNET_TieredPGO=0"), so the client keeps its own runtime settings.
// COUNTERS=PREFIX writes the node's System.Runtime counters each second to PREFIX-roundN.csv (DOTNET_COUNTERS tool).
// TRACE=PATH collects a dotnet-trace (DOTNET_TRACE tool, managed frames named, also as PATH minus .nettrace plus
// .speedscope.json) of TRACE_SECONDS (15) from the start of pass TRACE_PASS (1) of round 1 into PATH: TRACE_PASS=2 with
// PASSES=4 traces the warm fast path alone, the settled idle maximum of steady.sh.
var work = args[0];
var nodeDll = args[1];
var rounds = int.Parse(Environment.GetEnvironmentVariable("ROUNDS") ?? "2", CultureInfo.InvariantCulture);
var concurrency = int.Parse(Environment.GetEnvironmentVariable("CONCURRENCY") ?? "64", CultureInfo.InvariantCulture);
var passes = int.Parse(Environment.GetEnvironmentVariable("PASSES") ?? "2", CultureInfo.InvariantCulture);
var batchDirectives = Environment.GetEnvironmentVariable("COLD_BATCH") != "0";
var nodeEnv = NodeEnvironment.FromNodeEnv();
var lines = File.ReadAllLines(Path.Combine(work, "keys.txt"));
var ids = lines.Select(l => l[..l.IndexOf(',')]).ToArray();
var keys = lines.Select(l => DeviceRequestSignature.DeriveRequestKey(l[(l.IndexOf(',') + 1)..])).ToArray();
var token = "cold-bench-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
var tokenSha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}; {ids.Length} devices; node env: {string.Join(' ', nodeEnv.Select(e => e.Key + "=" + e.Value))}");
var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
long versionId = 0;
string digest = "";
long sequence = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
var results = new List<string>();

for (var round = 1; round <= rounds; round++)
{
    var port = FreePort();
    var url = $"http://127.0.0.1:{port}";
    var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
    psi.ArgumentList.Add(nodeDll);
    foreach (var a in new[]
             {
                 $"--Urls={url}", $"--Node:DataDirectory={work}/data", $"--Node:StoreRoot={work}/store", "--Node:Port=0",
                 "--Admin:Tokens:0:Name=bench", $"--Admin:Tokens:0:Sha256={tokenSha}", "--Admin:Tokens:0:Scopes:0=read",
                 "--Logging:LogLevel:Default=Warning",
             }) psi.ArgumentList.Add(a);
    foreach (var (k, v) in nodeEnv) psi.Environment[k] = v;
    var started = Stopwatch.StartNew();
    using var node = Process.Start(psi)!;
    node.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("node: " + e.Data); };
    node.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("node: " + e.Data); };
    node.BeginOutputReadLine();
    node.BeginErrorReadLine();
    while (true)
    {
        if (node.HasExited) throw new InvalidOperationException($"node exited with {node.ExitCode}");
        try { using var r = await probe.GetAsync($"{url}/health/ready"); if (r.IsSuccessStatusCode) break; }
        catch (HttpRequestException) { }
        if (started.Elapsed > TimeSpan.FromMinutes(3)) throw new TimeoutException("node not ready in 3 min");
        await Task.Delay(200);
    }
    var ready = started.Elapsed.TotalSeconds;
    var cpuAtReady = CpuSeconds(node.Id);
    if (versionId == 0)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"{url}/admin/v1/releases/acme/1.0");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var res = await probe.SendAsync(req);
        res.EnsureSuccessStatusCode();
        var view = await res.Content.ReadFromJsonAsync<JsonElement>();
        versionId = view.GetProperty("versionId").GetInt64();
        digest = view.GetProperty("inventoryDigest").GetString()!;
    }
    Console.WriteLine($"round {round}: ready {ready:0.0} s after start, node CPU {cpuAtReady:0.0} s until ready, RSS {Rss(node.Id) / 1048576.0:0} MiB");
    // COUNTERS=PREFIX: the node's System.Runtime counters (JIT, GC, thread pool) once a second, from ready to the end of the round.
    Process? counters = null;
    var countersOut = Environment.GetEnvironmentVariable("COUNTERS");
    if (!string.IsNullOrEmpty(countersOut))
        counters = Process.Start(new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_COUNTERS") ?? "dotnet-counters",
            ["collect", "-p", node.Id.ToString(CultureInfo.InvariantCulture), "--counters", "System.Runtime", "--format", "csv",
             "--refresh-interval", "1", "-o", $"{countersOut}-round{round}.csv"]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true })!;
    if (counters is not null) await Task.Delay(1500);
    Process? trace = null;
    var traceOut = Environment.GetEnvironmentVariable("TRACE");
    var tracePass = int.Parse(Environment.GetEnvironmentVariable("TRACE_PASS") ?? "1", CultureInfo.InvariantCulture);
    // A fresh client per round: a restarted node's clients connect anew.
    using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 4, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
    for (var pass = 1; pass <= passes; pass++)
    {
        if (round == 1 && pass == tracePass && !string.IsNullOrEmpty(traceOut))
        {
            // dotnet-common brings the JIT/loader events and the stop writes the rundown, so the trace names managed frames;
            // the trace must stop by itself (--duration) for the rundown to be written.
            trace = Process.Start(new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_TRACE") ?? "dotnet-trace",
                ["collect", "-p", node.Id.ToString(CultureInfo.InvariantCulture), "-o", traceOut, "--profile",
                 Environment.GetEnvironmentVariable("TRACE_PROFILE") ?? "dotnet-common,dotnet-sampled-thread-time,gc-collect",
                 "--format", "Speedscope", "--duration", "00:00:00:" + (Environment.GetEnvironmentVariable("TRACE_SECONDS") ?? "15")])
                { RedirectStandardOutput = true, RedirectStandardError = true })!;
            _ = trace.StandardOutput.ReadToEndAsync();
            _ = trace.StandardError.ReadToEndAsync();
            await Task.Delay(1500);
        }
        var cpu0 = CpuSeconds(node.Id);
        var m0 = await MetricsAsync(probe, url);
        var startedUtc = DateTime.UtcNow;
        var (seconds, lat, statuses, perSecond) = await PassAsync(http);
        var cpu = CpuSeconds(node.Id) - cpu0;
        var m1 = await MetricsAsync(probe, url);
        var sorted = lat.Order().ToArray();
        double Pct(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        var line = $"round {round} pass {pass}: {sorted.Length} check-ins in {seconds:0.00} s = {sorted.Length / seconds:0} /s, p50 {Pct(0.5):0.0} ms, p99 {Pct(0.99):0.0} ms, " +
                   $"node CPU {cpu:0.00} s = {cpu * 1e6 / sorted.Length:0} us per check-in, without actor {m1.WithoutActor - m0.WithoutActor} of {m1.CheckIns - m0.CheckIns}, " +
                   $"node allocated {(m1.Allocated - m0.Allocated) / sorted.Length:0} B per check-in ({m1.Gen0 - m0.Gen0} gen0 GCs), " +
                   $"credential reads {m1.Reads - m0.Reads}, statuses {string.Join(",", statuses.Select(s => s.Key + ":" + s.Value))}, " +
                   $"UTC {startedUtc:HH:mm:ss}-{DateTime.UtcNow:HH:mm:ss}";
        Console.WriteLine(line);
        Console.WriteLine($"  per second: {string.Join(' ', perSecond)}");
        results.Add(line);
    }
    if (trace is not null) { await trace.WaitForExitAsync(); Console.WriteLine($"trace: {traceOut} (exit {trace.ExitCode})"); }
    if (counters is not null)
    {
        using (var stop = Process.Start("kill", ["-INT", counters.Id.ToString(CultureInfo.InvariantCulture)])) await stop.WaitForExitAsync();
        await counters.WaitForExitAsync();
    }
    using (var kill = Process.Start("kill", ["-TERM", node.Id.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
    try { await node.WaitForExitAsync(cts.Token); } catch (OperationCanceledException) { node.Kill(); }
}
Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
return 0;

async Task<(double Seconds, List<double> Latencies, SortedDictionary<int, int> Statuses, List<int> PerSecond)> PassAsync(HttpClient http)
{
    var next = -1;
    var clock = Stopwatch.StartNew();
    var buckets = new int[600];
    var lat = new List<double>[concurrency];
    var st = new SortedDictionary<int, int>();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async w =>
    {
        lat[w] = [];
        while (true)
        {
            var i = Interlocked.Increment(ref next);
            if (i >= ids.Length) break;
            var t0 = Stopwatch.GetTimestamp();
            int status;
            try
            {
                using var request = Build(ids[i], keys[i]);
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead);
                await response.Content.ReadAsByteArrayAsync();
                status = (int)response.StatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { status = 0; }
            lat[w].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            Interlocked.Increment(ref buckets[Math.Min(599, (int)clock.Elapsed.TotalSeconds)]);
            lock (st) st[status] = st.GetValueOrDefault(status) + 1;
        }
    }));
    var seconds = clock.Elapsed.TotalSeconds;
    return (seconds, lat.SelectMany(l => l).ToList(), st, buckets.Take((int)Math.Ceiling(seconds)).ToList());
}

HttpRequestMessage Build(string deviceId, byte[] key)
{
    var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    // As an agent provisioned with a root document asks (and steady.sh's client): batch-signed directives; COLD_BATCH=0 asks
    // for one signature per answer, as an agent without one does.
    var body = JsonSerializer.SerializeToUtf8Bytes(new CheckInRequest("acme", versionId, digest, null, "bench-1.0", nonce,
        BatchDirectives: batchDirectives ? true : null), json);
    var path = $"/v1/devices/{deviceId}/check-in";
    var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
    request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
    request.Headers.Authorization = new AuthenticationHeaderValue(DeviceRequestSignature.Scheme,
        DeviceRequestSignature.Sign(key, "POST", path, deviceId, Interlocked.Increment(ref sequence), DateTimeOffset.UtcNow.ToUnixTimeSeconds(), body));
    return request;
}

static async Task<(double Reads, double CheckIns, double WithoutActor, double Allocated, double Gen0)> MetricsAsync(HttpClient http, string url)
{
    var text = await http.GetStringAsync(url + "/metrics");
    double Sum(string metric, string label = "") => text.Split('\n').Where(l => l.StartsWith(metric, StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal))
        .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    return (Sum("orch_gateway_credential_db_reads_total"), Sum("orch_gateway_checkins_total"), Sum("orch_gateway_checkins_answered_without_actor_total"),
        Sum("dotnet_gc_heap_total_allocated_bytes_total"), Sum("dotnet_gc_collections_total", "gc_heap_generation=\"gen0\""));
}

static double CpuSeconds(int pid)
{
    var stat = File.ReadAllText($"/proc/{pid}/stat");
    var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0;
}

static long Rss(int pid)
{
    foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    return 0;
}

static int FreePort()
{
    var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
    l.Start();
    var p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    l.Stop();
    return p;
}
