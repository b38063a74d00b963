using System.Globalization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Demo;

/// <summary>
/// One run of the demo: its nine steps in order, each a method, printing to the terminal while the node's own logs go
/// to <c>node/node.log</c>. A step reads what the earlier ones set up (node, keys, releases, fleet) from this object.
/// </summary>
internal sealed class DemoRun(string dir, int port, int devices, int damage, double interval, TextWriter terminal, string nodeLog)
{
    private const int Steps = 9;
    private int _step;
    private readonly List<RolloutView> _stopped = [];

    private void Step(string text) => terminal.WriteLine($"\nStep {++_step}/{Steps}  {text}");
    private void Info(string text) => terminal.WriteLine($"          {text}");

    /// <summary>Runs every step, then keeps the node and the fleet running until Ctrl+C; returns the exit code.</summary>
    public async Task<int> RunAsync()
    {
        terminal.WriteLine("Orchestrator demo: one node, a sample program in two versions, and a fleet of simulated devices.");
        terminal.WriteLine($"Everything lives in {dir}; nothing outside it is touched.");

        Step("Starting a node with every role (gateway, devices, chunks, rollouts), SQLite and a filesystem store");
        // The trust set exists before the node starts: the node signs every directive with its director key.
        var keys = KeyFiles.Generate(Path.Combine(dir, "keys"));
        var trustRoot = TrustFiles.Init(keys.Directory, DateTimeOffset.UtcNow);
        var app = await StartNodeAsync(keys);
        if (app is null) return 2;
        await using var _ = app;
        var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";
        var tokenFile = app.Services.GetRequiredService<AdminTokens>().BootstrapFile!;
        var token = File.ReadAllText(tokenFile).Trim();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(app.Lifetime.ApplicationStopping);
        var ct = stopping.Token;
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
        await WaitReadyAsync(http, ct);
        Info($"node log in {nodeLog}");
        Info($"listening on {baseUrl} (data in {Path.Combine(NodeDir, "data")}, store in {Path.Combine(NodeDir, "store")})");

        try
        {
            Step("The trust set (what `orch keys init` does): root, release and director keys, root document version 1");
            Info($"release public key {keys.PublicKeyHex[..16]}..., content key fingerprint {keys.ContentKeyFingerprint}; root version " +
                 $"{trustRoot.Root!.Version} names them and the node's director key; devices are provisioned with the root only");
            var store = app.Services.GetRequiredService<FileSystemStore>();
            TrustFiles.PublishRoots(keys.Directory, store);

            Step($"Publishing two versions of the sample program '{SampleProgram.Product}' (what `orch publish` does)");
            using var signing = KeyFiles.LoadSigningKey(keys.Directory);
            var publisher = new Publisher(store, KeyFiles.LoadContentKey(keys.Directory), signing);
            var (v1, v2) = PublishReleases(publisher);

            Step($"Provisioning {devices} simulated devices: a credential each through the admin API, sealed into its hidden zone");
            using var sim = NewFleet(baseUrl, keys);
            var credentials = new AdminCredentialSource(http, baseUrl, token);
            await sim.PrepareAsync(credentials.ProvisionAsync, ct);
            var ids = sim.Devices.Select(d => d.DeviceId).ToList();
            Info($"{ids[0]} ... {ids[^1]}: zones in {Path.Combine(dir, "devices", ids[0])}/{{virtual,hidden,free}}");

            Step($"Starting the devices: each checks in every {interval:0.#} s (± 50 %), at most 8 sessions at once");
            var fleetRun = sim.RunAsync(TimeSpan.FromSeconds(1), null, null, ct);
            Info("every device runs the real agent session: check-in, signed manifest, only missing chunks, verified install");
            var rollouts = new DemoRollouts(http, token);

            Step($"Installing {v1.Version} on every device (rollout demo-install, one wave)");
            await RollOutAsync(rollouts, sim, ids, "demo-install", v1, [100], ct);

            Step(damage == 0 ? "Damaging no device (--damage 0)" : $"Damaging {damage} device(s): the node sees the wrong file hashes at the next check-in and orders a repair");
            await DamageAndAwaitRepairsAsync(sim, ct);

            Step($"Rolling out {v2.Version} in waves of 10 %, 40 % and the rest (rollout demo-upgrade)");
            Info($"the node builds the delta {v1.Version} -> {v2.Version} in the background; devices use it once it exists (deltas/{v1.Product}/{v1.Version}/{v2.Version}.json)");
            await RollOutAsync(rollouts, sim, ids, "demo-upgrade", v2, [10, 40, 100], ct);
            var s = sim.Snapshot();
            Info($"fleet: {s.AtLeast(v2.VersionId)}/{s.Devices} on {v2.Version}; {s.CheckIns} check-ins, {s.Upgrades} upgrades, {s.Repairs} repairs, " +
                 $"{s.FailedAttempts} failed attempts, {s.BytesDownloaded / 1024} KiB downloaded in total");

            Step($"The updater updates itself: rolling out {DemoUpdater.Product} {DemoUpdater.Version} to {ids[0]}'s updater, then damaging its copies");
            await DemoUpdater.RunAsync(sim.Devices[0], publisher, Path.Combine(dir, "releases"), credentials, rollouts,
                File.ReadAllBytes(Path.Combine(keys.Directory, KeyFiles.ContentKeyFile)), File.ReadAllBytes(Path.Combine(keys.Directory, TrustFiles.RootDocumentFile)),
                Info, ct);

            PrintWhereToLook(baseUrl, tokenFile);
            await fleetRun;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is InvalidOperationException or HttpRequestException or IOException)
        {
            terminal.WriteLine($"orchestrator demo: {e.Message}");
            await app.StopAsync(CancellationToken.None);
            return 1;
        }
        terminal.WriteLine("stopping the demo (its folder stays; run the demo again to start afresh)");
        await app.StopAsync(CancellationToken.None);
        return 0;
    }

    private string NodeDir => Path.Combine(dir, "node");

    /// <summary>Builds and starts the node; null (after saying why) when it cannot listen on the port.</summary>
    private async Task<WebApplication?> StartNodeAsync(KeyFiles.GeneratedKeys keys)
    {
        WebApplication? app = null;
        try
        {
            app = NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Urls"] = $"http://127.0.0.1:{port}",
            ["Node:DataDirectory"] = Path.Combine(NodeDir, "data"),
            ["Node:StoreRoot"] = Path.Combine(NodeDir, "store"),
            ["Node:Port"] = "0",
            ["Gateway:NextCheckInSeconds"] = ((int)Math.Ceiling(interval)).ToString(CultureInfo.InvariantCulture),
            // The demo's devices check in again within a second or two on purpose (± 50 % of the interval): to the node's
            // busy rule that is a storm of early devices, which it would send away for 30-60 s whenever this machine
            // makes a new request wait 5 ms.
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
            // The keys exist before the first rollout: the node then builds deltas for its devices.
            ["Deltas:KeysDirectory"] = Path.Combine(dir, "keys"),
            ["Trust:DirectorKeyFile"] = Path.Combine(keys.Directory, TrustFiles.DirectorKeyFile),
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
        }),
        // The node's console is the log file (Console.SetOut in DemoCommand) while the process still has a terminal, so
        // the formatter would otherwise write colour codes into the file.
        s => s.Configure<Microsoft.Extensions.Logging.Console.SimpleConsoleFormatterOptions>(o =>
            o.ColorBehavior = Microsoft.Extensions.Logging.Console.LoggerColorBehavior.Disabled));
            await app.StartAsync();
            return app;
        }
        catch (IOException e)
        {
            terminal.WriteLine($"orchestrator demo: the node could not listen on 127.0.0.1:{port}: {e.Message}; pick another with --port");
            if (app is not null) await app.DisposeAsync();
            return null;
        }
    }

    private (PublishResult V1, PublishResult V2) PublishReleases(Publisher publisher)
    {
        var releases = new List<PublishResult>();
        foreach (var version in new[] { "1.0.0", "1.1.0" })
        {
            var tree = Path.Combine(dir, "releases", version);
            SampleProgram.Write(tree, version);
            var r = publisher.Publish(new PublishRequest(SampleProgram.Product, version, tree));
            releases.Add(r);
            Info($"{version}: version ID {r.VersionId}, {r.Files} files, {r.BytesTotal / 1024} KiB in {r.ChunksDistinct} chunks, " +
                 $"{r.ChunksNew} new ({r.BytesNew / 1024} KiB stored) -> {r.ManifestPath}");
        }
        return (releases[0], releases[1]);
    }

    private FleetSimulator NewFleet(string baseUrl, KeyFiles.GeneratedKeys keys) => new(new SimulationOptions
    {
        Devices = devices,
        Gateway = baseUrl,
        Root = Path.Combine(dir, "devices"),
        Product = SampleProgram.Product,
        ContentKey = File.ReadAllBytes(Path.Combine(keys.Directory, KeyFiles.ContentKeyFile)),
        TrustRoot = File.ReadAllBytes(Path.Combine(keys.Directory, TrustFiles.RootDocumentFile)),
        IdPrefix = "demo-",
        Concurrency = 8,
        CheckInIntervalSeconds = interval,
        StartSpreadSeconds = Math.Min(interval, 2),
        Download = new() { Parallelism = 2, BackoffBaseMilliseconds = 250, BackoffCapMilliseconds = 5_000, RequestTimeoutSeconds = 15 },
    });

    /// <summary>Starts a rollout of <paramref name="release"/> to every device and watches it until it stops; one that did not complete is listed at the end.</summary>
    private async Task RollOutAsync(DemoRollouts rollouts, FleetSimulator sim, IReadOnlyList<string> ids, string id, PublishResult release,
        IReadOnlyList<double> waves, CancellationToken ct)
    {
        await rollouts.StartAsync(id, release.Product, release.Version, ids, waves, ct);
        var end = await WatchAsync(rollouts, id, sim, release.VersionId, ct);
        if (end.Status != RolloutStatus.Completed) _stopped.Add(end);
    }

    private async Task DamageAndAwaitRepairsAsync(FleetSimulator sim, CancellationToken ct)
    {
        var random = new Random(7);
        var repairsBefore = sim.Counters.Repairs;
        foreach (var d in sim.Devices.OrderBy(_ => random.Next()).Take(damage))
            Info(d.DamageClient(random) ?? $"{d.DeviceId}: nothing installed to damage");
        var until = DateTime.UtcNow.AddSeconds(60 + interval * 4);
        while (damage > 0 && sim.Counters.Repairs - repairsBefore < damage && DateTime.UtcNow < until && !ct.IsCancellationRequested)
            await Task.Delay(500, ct);
        Info($"{sim.Counters.Repairs - repairsBefore} repair(s) done: each fetched only the damaged file's missing chunks");
    }

    private void PrintWhereToLook(string baseUrl, string tokenFile)
    {
        terminal.WriteLine();
        foreach (var v in _stopped)
        {
            terminal.WriteLine($"Note: rollout {v.Spec.RolloutId} did not complete: {DemoRollouts.Describe(v)}");
            terminal.WriteLine($"      inspect it with `orch rollout show {v.Spec.RolloutId}` or on the dashboard; `orch rollout resume|retry|abort` steer it");
        }
        terminal.WriteLine(_stopped.Count == 0 ? "The demo is up. Open the dashboard and look around:" : "The demo is up, with the rollout(s) above stopped. Open the dashboard:");
        terminal.WriteLine($"  dashboard    {baseUrl}");
        terminal.WriteLine($"  admin token  {tokenFile}   (paste it into the dashboard, or use it with curl / orch)");
        terminal.WriteLine($"  try          curl -H \"Authorization: Bearer $(cat {tokenFile})\" {baseUrl}admin/v1/rollouts");
        terminal.WriteLine($"  devices      {Path.Combine(dir, "devices")}  (damage a file under <id>/free/client/ and watch it get repaired)");
        terminal.WriteLine("The node and the devices keep running; press Ctrl+C to stop.");
    }

    /// <summary>Prints every change of the rollout until it stops (completed, or paused for an operator) or 5 minutes pass; returns its last view.</summary>
    private async Task<RolloutView> WatchAsync(DemoRollouts rollouts, string id, FleetSimulator sim, long versionId, CancellationToken ct)
    {
        var until = DateTime.UtcNow.AddMinutes(5);
        var last = "";
        for (;;)
        {
            var view = await rollouts.GetAsync(id, ct);
            var s = sim.Snapshot();
            var text = $"{DemoRollouts.Describe(view)} | fleet: {s.AtLeast(versionId)}/{s.Devices} on the target";
            if (text != last) Info(text);
            last = text;
            if (DemoRollouts.HasStopped(view)) return view;
            if (DateTime.UtcNow > until)
            {
                Info("still not finished after 5 minutes; continuing so you can inspect it on the dashboard");
                return view;
            }
            await Task.Delay(1000, ct);
        }
    }

    private static async Task WaitReadyAsync(HttpClient http, CancellationToken ct)
    {
        for (var i = 0; ; i++)
        {
            using var r = await http.GetAsync("health/ready", ct);
            if (r.IsSuccessStatusCode) return;
            if (i > 300) throw new InvalidOperationException("the node did not become ready within 30 s");
            await Task.Delay(100, ct);
        }
    }
}
