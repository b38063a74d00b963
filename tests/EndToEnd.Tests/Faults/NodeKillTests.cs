using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Hosting;
using Xunit.Abstractions;
using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// A phased rollout created through the admin API; the node process is killed with SIGKILL while a wave is in
/// flight and restarted on the same SQLite data directory.
/// </summary>
public sealed class NodeKillTests(ITestOutputHelper output)
{
    private const string RolloutId = "kill9";

    [Fact]
    public async Task Node_killed_mid_wave_resumes_the_rollout_to_exact_completion_and_loses_no_acknowledged_device_state()
    {
        using var rig = new NodeProcessRig();
        var store = rig.Store;
        var v1 = store.Publish("1.0", Releases.V1());
        using var fleetDir = new TempDir();
        var completions = new ConcurrentDictionary<string, long>();
        // Acknowledged check-ins per device: all of them, and those that handed out work (always a state change).
        var checkIns = new ConcurrentDictionary<string, int>();
        var workCheckIns = new ConcurrentDictionary<string, int>();
        var rolloutDone = false;
        using var fleet = new FleetSimulator(new SimulationOptions
        {
            Devices = 8, Gateway = rig.BaseUrl, Root = fleetDir.Path, Product = "acme", ContentKey = store.ContentKey.ToBytes(),
            TrustRoot = store.SigningKey.PublicKey.ToBytes(), Concurrency = 4, CheckInIntervalSeconds = 0.3, StartSpreadSeconds = 0.3,
            Download = NetworkFaultTests.FastRetries with { BackoffCapMilliseconds = 500 }, Seed = 2,
        })
        {
            CompletionAcknowledged = (id, report) => completions[id] = report.InstalledVersionId,
            CheckInAcknowledged = (id, r) =>
            {
                checkIns.AddOrUpdate(id, 1, (_, n) => n + 1);
                if (r.Action != UpdateAction.None) workCheckIns.AddOrUpdate(id, 1, (_, n) => n + 1);
            },
        };
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(75));
        var ct = timeout.Token;

        await rig.StartAsync();
        using var admin = new HttpClient { BaseAddress = new Uri(rig.BaseUrl), Timeout = TimeSpan.FromSeconds(10) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        var credentials = new AdminCredentialSource(admin, admin.BaseAddress!.ToString(), NodeUnderTest.OperateToken);
        await fleet.PrepareAsync(credentials.ProvisionAsync, ct);

        // Three waves (2, 3, the remaining 3), at most 2 devices in flight: the rollout spends several polls per wave.
        using (var created = await admin.PostAsJsonAsync("admin/v1/rollouts", new
               {
                   id = RolloutId, product = "acme", version = "1.0",
                   selector = new { deviceIds = fleet.Devices.Select(d => d.DeviceId).ToList() },
                   waves = new object[] { new { count = 2 }, new { count = 3 }, new { percent = 100 } },
                   maxConcurrent = 2, successThreshold = 1.0, errorThreshold = 0.5, maxAttemptsPerDevice = 1000, @operator = "e2e",
               }, ct))
            Assert.True(created.StatusCode == HttpStatusCode.Created, $"create rollout: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync(ct)}");

        var run = fleet.RunAsync(TimeSpan.FromMilliseconds(100), null, s => Volatile.Read(ref rolloutDone) && s.AtLeast(v1.VersionId) == s.Devices, ct);

        // Kill in the middle of wave 2: it started, a device of it is in flight, and it has not finished.
        RolloutView before;
        for (;;)
        {
            Assert.False(run.IsCompleted, "the fleet stopped before the kill");
            before = await ViewAsync(admin, ct);
            var w2 = before.Waves[1];
            if (before.CurrentWave == 2 && w2.InProgress > 0 && w2.Succeeded < w2.Total) break;
            Assert.NotEqual(RolloutStatus.Completed, before.Status);
            await Task.Delay(25, ct);
        }
        rig.Kill();
        var completedBeforeKill = completions.ToDictionary();
        output.WriteLine($"SIGKILL in wave {before.CurrentWave}: {Describe(before)}; {completedBeforeKill.Count} completion(s) acknowledged");

        await rig.StartAsync();
        try
        {
            // The restarted node's rollout singleton recovers the rollout and drives it to the end.
            RolloutView final;
            var sw = Stopwatch.StartNew();
            for (;;)
            {
                try { final = await ViewAsync(admin, ct); }
                catch (HttpRequestException) { await Task.Delay(100, ct); continue; } // 503 while the singleton starts
                if (final.Status is not (RolloutStatus.Running or RolloutStatus.Created)) break;
                Assert.False(run.IsCompleted, "the fleet stopped before the rollout ended");
                await Task.Delay(100, ct);
            }
            output.WriteLine($"after restart ({sw.Elapsed.TotalSeconds:0.0} s): {final.Status}: {Describe(final)}");
            Assert.Equal(RolloutStatus.Completed, final.Status);
            Volatile.Write(ref rolloutDone, true);
            var fleetEnd = await run;
            Assert.Equal(fleet.Devices.Count, fleetEnd.AtLeast(v1.VersionId));

            // Exact counters: every device counted once, in its planned wave, none failed or left behind.
            Assert.Equal(new[] { 2, 3, 3 }, final.Waves.Select(w => w.Total));
            Assert.All(final.Waves, w => Assert.Equal((w.Total, 0, 0, 0), (w.Succeeded, w.Pending, w.InProgress, w.Failed)));
            Assert.Empty(final.Failures);

            // Nothing the node acknowledged before or after the kill is missing from the restarted node's journal.
            var verified = 0;
            foreach (var d in fleet.Devices)
            {
                var state = await GetAsync<DeviceState>(admin, $"admin/v1/devices/{d.DeviceId}", ct);
                Assert.Equal(v1.VersionId, state.InstalledVersionId);
                Assert.Equal(RolloutId, state.Target?.RolloutId);
                Assert.Null(state.Work);
                var history = await GetAsync<DeviceHistoryView>(admin, $"admin/v1/devices/{d.DeviceId}/history", ct);
                var journaledCheckIns = history.Events.Where(e => e.Type == nameof(DeviceCheckedIn))
                    .Select(e => e.Data.Deserialize<DeviceCheckedIn>(AdminJson.Options)!).ToList();
                var acked = checkIns.GetValueOrDefault(d.DeviceId);
                var ackedWork = workCheckIns.GetValueOrDefault(d.DeviceId);
                // Every answered check-in that changed the device's state was journaled before its answer (unanswered ones
                // may be journaled too). Idle heartbeats are not journaled (DeviceActorSettings.LastSeenPersistInterval),
                // but a device's first check-in and every check-in that handed out work are state changes.
                var journaledWork = journaledCheckIns.Count(e => e.Decision != UpdateAction.None);
                Assert.True(journaledWork >= ackedWork,
                    $"{d.DeviceId}: {ackedWork} work-giving check-ins acknowledged but only {journaledWork} in the journal");
                Assert.True(acked == 0 || journaledCheckIns.Count >= 1, $"{d.DeviceId}: {acked} check-ins acknowledged but none in the journal");
                Assert.True(ackedWork >= 1, $"{d.DeviceId}: no acknowledged check-in handed out the upgrade");
                // Every upgrade is journaled as completed: by its report, or (a report the kill cut off) by the next check-in.
                Assert.Contains(history.Events, e => e.Type == nameof(WorkCompleted)
                                                     && e.Data.Deserialize<WorkCompleted>(AdminJson.Options)!.InstalledVersionId == v1.VersionId);
                verified += ackedWork + (completions.ContainsKey(d.DeviceId) ? 1 : 0);
            }
            // A completion report is sent once (the next check-in supersedes it), so only devices in flight at the kill
            // (at most maxConcurrent) may have lost theirs.
            Assert.InRange(completions.Count, fleet.Devices.Count - 2, fleet.Devices.Count);
            Assert.All(completions.Values, v => Assert.Equal(v1.VersionId, v));
            output.WriteLine($"{verified} acknowledged work-giving check-ins and completions verified against the journal");
        }
        finally
        {
            rig.Kill();
        }
    }

    private static async Task<RolloutView> ViewAsync(HttpClient admin, CancellationToken ct) =>
        await GetAsync<RolloutView>(admin, $"admin/v1/rollouts/{RolloutId}", ct);

    private static async Task<T> GetAsync<T>(HttpClient admin, string path, CancellationToken ct)
    {
        using var res = await admin.GetAsync(path, ct);
        var body = await res.Content.ReadAsStringAsync(ct);
        if (!res.IsSuccessStatusCode) throw new HttpRequestException($"GET {path}: {(int)res.StatusCode} {body}");
        return JsonSerializer.Deserialize<T>(body, AdminJson.Options) ?? throw new JsonException($"GET {path}: empty answer");
    }

    private static string Describe(RolloutView v) =>
        string.Join("; ", v.Waves.Select(w => $"w{w.Wave} {w.Succeeded}/{w.Total} ok, {w.InProgress} in flight, {w.Pending} pending, {w.Failed} failed"));

}

/// <summary>The real node executable (orchestrator.dll) as a child process, with <see cref="NodeUnderTest.OperateToken"/> (read + operate).</summary>
internal sealed class NodeProcess
{
    private readonly Process _process;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output;
    private NodeProcess(Process p, System.Collections.Concurrent.ConcurrentQueue<string> output) => (_process, _output) = (p, output);

    /// <summary>The process id.</summary>
    public int Pid => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>What the node wrote to stdout and stderr so far, line by line.</summary>
    public IReadOnlyList<string> Output => _output.ToArray();

    /// <summary>Starts the node on <paramref name="port"/> and waits until it reports ready; <paramref name="settings"/> are extra command-line settings.</summary>
    public static Task<NodeProcess> StartAsync(int port, string data, string store, params string[] settings) => StartAsync(port, data, store, null, settings);

    /// <summary>
    /// As <see cref="StartAsync(int, string, string, string[])"/>, the process limited to <paramref name="openFiles"/> open
    /// files (soft and hard, set by the shell that starts it) when given.
    /// </summary>
    public static async Task<NodeProcess> StartAsync(int port, string data, string store, int? openFiles, params string[] settings)
    {
        var psi = new ProcessStartInfo(openFiles is null ? "dotnet" : "bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (openFiles is { } limit)
            foreach (var a in new[] { "-c", $"ulimit -n {limit} && exec dotnet \"$@\"", "node" }) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(typeof(NodeApp).Assembly.Location);
        var token = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(NodeUnderTest.OperateToken)));
        foreach (var a in new[]
                 {
                     $"--Urls=http://127.0.0.1:{port}", $"--Node:DataDirectory={data}", $"--Node:StoreRoot={store}", "--Node:Port=0",
                     "--Admin:Tokens:0:Name=e2e", $"--Admin:Tokens:0:Sha256={token}", "--Admin:Tokens:0:Scopes:0=read",
                     "--Admin:Tokens:0:Scopes:1=operate", "--Logging:LogLevel:Default=Warning",
                     $"--{RunningNode.BusyRuleOff.Key}={RunningNode.BusyRuleOff.Value}",
                 }.Concat(settings))
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; ; i++)
        {
            try
            {
                using var r = await http.GetAsync($"http://127.0.0.1:{port}/health/ready");
                if (r.IsSuccessStatusCode) return new NodeProcess(p, output);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (p.HasExited) throw new InvalidOperationException($"node process exited with {p.ExitCode}: {string.Join("\n", output.TakeLast(20))}");
            if (i > 300) { p.Kill(); throw new TimeoutException("node process not ready within 30 s"); }
            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no flushing.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
    }
}
