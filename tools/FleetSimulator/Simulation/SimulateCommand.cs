using System.Globalization;
using System.Text.Json;
using Orchestrator.CommandLine;
using Orchestrator.DeviceAgent.Download;

namespace Orchestrator.DeviceAgent.Simulation;

/// <summary><c>orch-simulate</c>: a fleet of simulated devices in this process against a node.</summary>
public static class SimulateCommand
{
    /// <summary>Usage of the command.</summary>
    public const string Usage = """
          orch-simulate --devices N --gateway URL --product NAME --content-key-file F --trust-root-file F
                              [--admin-token-file F] [--root DIR] [--prefix sim-] [--concurrency 32] [--interval 30]
                              [--jitter 0.5] [--start-spread 5] [--until-version ID | --once | --duration SECONDS]
                              [--progress 2] [--seed N] [--json]
              N devices in one process, each with its own zones under DIR/<id>/ and the real update session;
              devices without a credential are provisioned through the node's admin API (--admin-token-file);
              check-ins every --interval seconds ± --jitter (fraction); at most --concurrency sessions at once;
              stops when every device has version ID >= --until-version, after one session each (--once),
              after --duration, or on Ctrl+C; prints progress, then a summary (JSON on stdout with --json)
        """;

    private static readonly CommandGrammar Grammar = new("orch-simulate",
    [
        SwitchSpec.Value("devices", "N", required: true), SwitchSpec.Value("gateway", "URL", required: true),
        SwitchSpec.Value("product", "NAME", required: true), SwitchSpec.Value("content-key-file", "F", required: true),
        SwitchSpec.Value("trust-root-file", "F", required: true), SwitchSpec.Value("admin-token-file", "F"), SwitchSpec.Value("root", "DIR"),
        SwitchSpec.Value("prefix", "PREFIX"), SwitchSpec.Value("concurrency", "N"), SwitchSpec.Value("interval", "SECONDS"),
        SwitchSpec.Value("jitter", "FRACTION"), SwitchSpec.Value("start-spread", "SECONDS"), SwitchSpec.Value("until-version", "ID"),
        SwitchSpec.Flag("once"), SwitchSpec.Value("duration", "SECONDS"), SwitchSpec.Value("progress", "SECONDS"), SwitchSpec.Value("seed", "N"),
        SwitchSpec.Flag("json"),
    ]);

    /// <summary>Runs the command; returns the exit code (0 ok, 1 stop condition not reached, 2 bad input, 130 interrupted).</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        ParsedArguments o;
        SimulationOptions options;
        long? untilVersion;
        double? duration;
        double progress;
        try
        {
            o = Grammar.Parse(args);
            options = new SimulationOptions
            {
                Devices = o.Int("devices", 0),
                Gateway = o.Required("gateway"),
                Product = o.Required("product"),
                Root = o.Optional("root") ?? "sim-fleet",
                IdPrefix = o.Optional("prefix") ?? "sim-",
                ContentKey = ReadKey(o.Required("content-key-file"), "--content-key-file"),
                TrustRoot = ReadKey(o.Required("trust-root-file"), "--trust-root-file"),
                Concurrency = o.Int("concurrency", 32),
                CheckInIntervalSeconds = o.Double("interval", 30),
                JitterFraction = o.Double("jitter", 0.5),
                StartSpreadSeconds = o.Double("start-spread", 5),
                OneSessionPerDevice = o.Has("once"),
                Seed = o.OptionalLong("seed", int.MinValue, int.MaxValue) is { } seed ? (int)seed : null,
            };
            options.Validate();
            if (o.Optional("admin-token-file") is { } tokenFile && !File.Exists(tokenFile))
                throw new ArgumentException($"--admin-token-file '{tokenFile}' does not exist (it is the node's data/admin-token, or a file holding a token with the 'operate' scope)");
            untilVersion = o.OptionalLong("until-version");
            duration = o.OptionalDouble("duration", 0, exclusiveMin: true);
            progress = o.Double("progress", 2, 0, exclusiveMin: true);
            if (new[] { untilVersion is not null, duration is not null, options.OneSessionPerDevice }.Count(b => b) > 1)
                throw new ArgumentException("give at most one of --until-version, --once and --duration");
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"orch-simulate: {e.Message}");
            stderr.WriteLine("usage:");
            stderr.WriteLine(Usage);
            return 2;
        }

        var json = o.Has("json");
        var human = json ? stderr : stdout;
        void Say(string m) { lock (human) human.WriteLine($"{DateTimeOffset.UtcNow:HH:mm:ss} simulate: {m}"); }
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        if (duration is { } d) cts.CancelAfter(TimeSpan.FromSeconds(d));
        var timeline = new List<FleetSnapshot>();
        try
        {
            using var fleet = new FleetSimulator(options, Say);
            using var adminHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            AdminCredentialSource? admin = null;
            await fleet.PrepareAsync((id, ct) =>
            {
                admin ??= new AdminCredentialSource(adminHttp, options.Gateway,
                    File.ReadAllText(o.Optional("admin-token-file")
                        ?? throw new ArgumentException($"device '{id}' has no credential yet; pass --admin-token-file (the node's data/admin-token) so it can be provisioned")).Trim());
                return admin.ProvisionAsync(id, ct);
            }, cts.Token);
            Say($"running {options.Devices} device(s) against {options.Gateway}: at most {options.Concurrency} session(s) at once, " +
                $"check-in every {options.CheckInIntervalSeconds:0.#} s ± {options.JitterFraction * 100:0}%" +
                (untilVersion is { } uv ? $", until every device has version ID >= {uv}" : options.OneSessionPerDevice ? ", one session per device" :
                    duration is { } dd ? $", for {dd:0.#} s" : ", until Ctrl+C"));
            var final = await fleet.RunAsync(TimeSpan.FromSeconds(progress), s =>
            {
                lock (timeline) timeline.Add(s);
                Say(Describe(s, untilVersion));
            }, untilVersion is { } v ? s => s.AtLeast(v) == s.Devices : null, cts.Token);
            var reached = untilVersion is not { } target || final.AtLeast(target) == final.Devices;
            Say("done: " + Describe(final, untilVersion));
            foreach (var (reason, count) in fleet.TopFailures(5)) Say($"  {count,6} × {reason}");
            if (json)
            {
                var summary = new
                {
                    devices = final.Devices,
                    elapsedSeconds = Math.Round(final.ElapsedSeconds, 3),
                    untilVersion,
                    reached,
                    versions = final.Versions.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => kv.Value),
                    checkIns = final.CheckIns,
                    checkInsPerSecond = final.ElapsedSeconds > 0 ? Math.Round(final.CheckIns / final.ElapsedSeconds, 1) : 0,
                    upgrades = final.Upgrades,
                    repairs = final.Repairs,
                    failedAttempts = final.FailedAttempts,
                    completionsAcknowledged = fleet.Counters.CompletionsAcknowledged,
                    bytesDownloaded = final.BytesDownloaded,
                    chunksDownloaded = fleet.Counters.ChunksDownloaded,
                    chunksReused = fleet.Counters.ChunksReused,
                    topFailures = fleet.TopFailures(5).Select(f => new { reason = f.Reason, count = f.Count }),
                    timeline = timeline.Select(s => new
                    {
                        t = Math.Round(s.ElapsedSeconds, 2),
                        atTarget = untilVersion is { } tv ? s.AtLeast(tv) : (int?)null,
                        checkIns = s.CheckIns,
                        running = s.Running,
                        failedAttempts = s.FailedAttempts,
                    }),
                };
                stdout.WriteLine(JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }));
            }
            if (!reached) return 1;
            return duration is null && cts.IsCancellationRequested && untilVersion is null && !options.OneSessionPerDevice ? 130 : 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or HttpRequestException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"orch-simulate: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("orch-simulate: interrupted while preparing the devices");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>One progress line.</summary>
    public static string Describe(FleetSnapshot s, long? target)
    {
        var versions = string.Join(" ", s.Versions.OrderBy(v => v.Key).Select(v => $"{(v.Key == 0 ? "none" : v.Key.ToString(CultureInfo.InvariantCulture))}:{v.Value}"));
        var head = target is { } t ? $"{s.AtLeast(t)}/{s.Devices} at target" : $"{s.Devices} devices";
        return $"[{s.ElapsedSeconds,7:0.0}s] {head} | versions {versions} | check-ins {s.CheckIns} ({(s.ElapsedSeconds > 0 ? s.CheckIns / s.ElapsedSeconds : 0):0.#}/s) | " +
               $"upgrades {s.Upgrades}, repairs {s.Repairs} | failed attempts {s.FailedAttempts} | running {s.Running} | {s.BytesDownloaded / 1048576.0:0.0} MiB";
    }

    private static byte[] ReadKey(string path, string name)
    {
        if (!File.Exists(path)) throw new ArgumentException($"{name} '{path}' does not exist");
        return File.ReadAllBytes(path);
    }
}
