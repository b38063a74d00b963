using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.Messages.Protocol;

/// <summary>
/// The storm from <c>wrk</c> (STORM_CLIENT=wrk): a client cheap enough to offer several times what the node answers from
/// the same two cores. The check-ins are signed here before the storm starts (valid for Gateway:DeviceClockSkewSeconds,
/// 300 s by default), one file per wrk thread, each device in one file only and its sequence numbers increasing down the
/// file, so no check-in of the storm is a replay until a thread has sent its whole file and wraps around.
/// </summary>
sealed class WrkStorm
{
    public sealed record Result(long Requests, double Seconds, long Status200, long Status401, long Status503, long Status429, long StatusOther,
        long RetryAfter, long Wrapped, long ConnectErrors, long ReadErrors, long WriteErrors, long Timeouts, double P50Ms, double P99Ms, double MaxMs,
        long Waits, double WaitSeconds)
    {
        /// <summary>CPU seconds (user + system) wrk used, read from /proc while it ran (the last reading before it exited).</summary>
        public double CpuSeconds { get; set; }

        /// <summary>Connections opened (the sockets client only: wrk does not count them).</summary>
        public long Connects { get; init; }

        /// <summary>Answers that said Connection: close (the sockets client only).</summary>
        public long ClosedByServer { get; init; }

        public double PerSecond => Requests / Seconds;
        public long SocketErrors => ConnectErrors + ReadErrors + WriteErrors + Timeouts;
    }

    private readonly string _dir;
    private readonly string _script;
    private readonly int _threads;
    private readonly int _connections;
    private readonly int _pipeline;
    // STORM_CLIENT=sockets: AgentSocketStorm (SteadyBench sockstorm) sends the prepared check-ins instead of wrk.
    private readonly bool _sockets = Environment.GetEnvironmentVariable("STORM_CLIENT") == "sockets";

    /// <summary>Connections wrk keeps open (STORM_CONNECTIONS).</summary>
    public int Connections => _connections;

    private WrkStorm(string dir, string script, int threads, int connections, int pipeline)
        => (_dir, _script, _threads, _connections, _pipeline) = (dir, script, threads, connections, pipeline);

    /// <summary>
    /// Signs <paramref name="count"/> check-ins of the devices from <paramref name="firstDevice"/> on (round robin, so a
    /// device's next check-in is thousands of requests later) with sequence numbers above <see cref="CheckIns.Sequence"/>,
    /// which it then moves past them.
    /// </summary>
    public static async Task<WrkStorm> PrepareAsync(string work, string[] ids, byte[][] keys, int firstDevice, long count)
    {
        var script = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../storm.lua"));
        if (!File.Exists(script)) throw new FileNotFoundException($"STORM_CLIENT=wrk needs bench/fleet/storm.lua (looked at {script})");
        var threads = (int)Env.Get("STORM_WRK_THREADS", 2);
        var storm = new WrkStorm(Path.Combine(work, "wrk-storm"), script, threads, (int)Env.Get("STORM_CONNECTIONS", 4096), (int)Env.Get("STORM_PIPELINE", 1));
        if (!storm._sockets && !File.Exists("/usr/bin/wrk")) throw new FileNotFoundException("STORM_CLIENT=wrk needs wrk: apt-get install wrk");
        Directory.CreateDirectory(storm._dir);
        var clock = Stopwatch.StartNew();
        var devices = ids.Length - firstDevice;
        var baseSequence = CheckIns.Sequence + 1;
        var ts = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var perThread = count / threads;
        await Parallel.ForAsync(0, threads, async (t, _) =>
        {
            // Thread t's devices: those with (device - firstDevice) % threads == t, in turn.
            var own = Enumerable.Range(0, devices).Where(d => d % threads == t).Select(d => firstDevice + d).ToArray();
            await using var file = new StreamWriter(Path.Combine(storm._dir, $"part-{t}"), false, new UTF8Encoding(false), 1 << 20);
            for (long j = 0; j < perThread; j++)
            {
                var device = own[(int)(j % own.Length)];
                var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
                var body = JsonSerializer.SerializeToUtf8Bytes(new CheckInRequest("acme", CheckIns.Installed.VersionId, CheckIns.Installed.Digest, null, "bench-1.0", nonce), CheckIns.Json);
                var path = $"/v1/devices/{ids[device]}/check-in";
                // Unique per (thread, line) and increasing down each file: line j of thread t signs baseSequence + j * threads + t.
                var auth = DeviceRequestSignature.Scheme + " " + DeviceRequestSignature.Sign(keys[device], "POST", path, ids[device], baseSequence + j * threads + t, ts, body);
                await file.WriteAsync(path);
                await file.WriteAsync('\t');
                await file.WriteAsync(auth);
                await file.WriteAsync('\t');
                await file.WriteLineAsync(Encoding.UTF8.GetString(body));
            }
        });
        CheckIns.Sequence = baseSequence + perThread * threads + 1;
        Console.WriteLine($"wrk storm: {perThread * threads} check-ins of {devices} devices signed in {clock.Elapsed.TotalSeconds:0.0} s " +
                          $"({threads} wrk threads, {storm._connections} connections, pipeline {storm._pipeline})");
        return storm;
    }

    private void ResetParts()
    {
        for (var t = 0; t < _threads; t++)
        {
            var claimed = Path.Combine(_dir, $"claimed-{t}");
            if (File.Exists(claimed)) File.Move(claimed, Path.Combine(_dir, $"part-{t}"), true);
        }
    }

    /// <summary>Whether the socket client runs its continuations on the sockets' event thread (STORM_INLINE_COMPLETIONS, default 1).</summary>
    public static bool InlineCompletions => Env.Get("STORM_INLINE_COMPLETIONS", 1) > 0;

    /// <summary>
    /// Runs wrk for <paramref name="duration"/> against <paramref name="url"/>. With <paramref name="trivialPath"/> every
    /// request is a GET of that path instead (same connections, same header bytes): the client's own ceiling. With
    /// <paramref name="honour"/> each connection waits out a 429/503's Retry-After before its next request, as the agent
    /// does (storm.lua, STORM_HONOUR).
    /// </summary>
    /// <remarks>
    /// With <paramref name="ready"/> and <paramref name="go"/> (the socket client): <paramref name="ready"/> completes once
    /// the client has read its check-ins, and the client starts when <paramref name="go"/> completes. wrk starts at once.
    /// </remarks>
    public async Task<Result> RunAsync(string url, TimeSpan duration, string? trivialPath = null, bool honour = false,
        TaskCompletionSource? ready = null, Task? go = null)
    {
        ResetParts();
        var gated = _sockets && ready is not null && go is not null;
        var psi = Env.DeviceClient(_sockets ? "dotnet" : "/usr/bin/wrk");
        (psi.RedirectStandardOutput, psi.RedirectStandardError, psi.RedirectStandardInput) = (true, true, gated);
        psi.Environment["STORM_HONOUR"] = honour ? "1" : "0";
        if (gated) psi.Environment["STORM_WAIT_FOR_GO"] = "1";
        // The socket client's continuations run on the sockets' event thread (STORM_INLINE_COMPLETIONS, default 1), so each
        // device writes its request as soon as its connect completes, as a device does; through the thread pool, the herd's
        // writes queued behind its 16 384 connects and reached the node up to seconds after them.
        if (_sockets) psi.Environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = InlineCompletions ? "1" : "0";
        foreach (var a in _sockets
                     ? [typeof(WrkStorm).Assembly.Location, "sockstorm", url, _dir, ((int)duration.TotalSeconds).ToString(CultureInfo.InvariantCulture),
                         _connections.ToString(CultureInfo.InvariantCulture), honour ? "1" : "0"]
                     : new[]
                 {
                     "-t", _threads.ToString(CultureInfo.InvariantCulture), "-c", _connections.ToString(CultureInfo.InvariantCulture),
                     "-d", $"{(int)duration.TotalSeconds}s", "--timeout", "30s", "-s", _script, url, "--", _dir, _pipeline.ToString(CultureInfo.InvariantCulture),
                 }) psi.ArgumentList.Add(a);
        if (trivialPath is not null) psi.ArgumentList.Add(trivialPath);
        using var wrk = Process.Start(psi)!;
        var stderr = wrk.StandardError.ReadToEndAsync();
        if (gated)
        {
            while (await wrk.StandardOutput.ReadLineAsync() is { } said && said != AgentSocketStorm.ReadyLine) { }
            ready!.TrySetResult();
            await go!;
            await wrk.StandardInput.WriteLineAsync("go");
            await wrk.StandardInput.FlushAsync();
        }
        else ready?.TrySetResult();
        var stdoutTask = wrk.StandardOutput.ReadToEndAsync();
        // wrk's CPU, sampled while it runs: once it has exited, /proc no longer has it. Its last second is missed.
        var cpu = 0.0;
        while (!stdoutTask.IsCompleted)
        {
            cpu = Math.Max(cpu, ProcCpu.Seconds(wrk.Id));
            await Task.WhenAny(stdoutTask, Task.Delay(250));
        }
        var stdout = await stdoutTask;
        await wrk.WaitForExitAsync();
        var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("wrk-storm ", StringComparison.Ordinal))
                   ?? throw new InvalidOperationException($"wrk exited {wrk.ExitCode} without its result line: {stdout} {await stderr}");
        var result = JsonSerializer.Deserialize<Result>(line["wrk-storm ".Length..], CheckIns.Json)!;
        result.CpuSeconds = cpu;
        return result;
    }

    /// <summary>The wrk result as the storm phase of the benchmark reports it (status 0: no answer, a socket error or timeout).</summary>
    public static Phase ToPhase(string name, Result r)
    {
        var statuses = new Dictionary<int, int>();
        void Add(int status, long n) { if (n > 0) statuses[status] = (int)n; }
        Add(200, r.Status200); Add(401, r.Status401); Add(503, r.Status503); Add(429, r.Status429); Add(-1, r.StatusOther); Add(0, r.SocketErrors);
        return new Phase(name, (int)r.Requests, statuses.Where(s => s.Key != 200).Sum(s => s.Value), r.Seconds, r.P50Ms, r.P99Ms, statuses);
    }
}

/// <summary>CPU time of processes and of the machine, from /proc (Linux).</summary>
public static class ProcCpu
{
    // USER_HZ: the unit of /proc's CPU times on Linux.
    private const double TicksPerSecond = 100;

    /// <summary>User + system CPU seconds of a process so far; 0 once it is gone.</summary>
    public static double Seconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which may hold spaces) closed by ')': utime and stime are the 12th and 13th.
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>Busy CPU seconds of the whole machine so far (every core: all but idle and iowait).</summary>
    public static double MachineBusySeconds()
    {
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long busy = 0;
        for (var i = 1; i < f.Length; i++)
            if (i is not 4 and not 5 and < 9) busy += long.Parse(f[i], CultureInfo.InvariantCulture);
        return busy / TicksPerSecond;
    }
}
