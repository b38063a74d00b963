// Fleet load benchmark: one node (all roles, SQLite, filesystem store) and N simulated devices (real agent
// sessions, real zones on disk) in one process. Devices are provisioned and registered (tag "bench") through the
// admin API, the fleet starts checking in, and a phased rollout is created through the admin API
// (POST /admin/v1/rollouts). The run ends when the rollout reports itself Completed and every device has the
// release installed. Rollout time is the rollout's own (updatedAt of the Completed view - createdAt).
// usage: FleetBench <devices> <work-dir> <out-prefix> [concurrency] [check-in-interval-s|auto] [max-concurrent|auto]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.CommandLine;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var grammar = new CommandGrammar("FleetBench", [], ["DEVICES", "WORK-DIR", "OUT-PREFIX", "[CONCURRENCY]", "[CHECK-IN-INTERVAL-S|auto]", "[MAX-CONCURRENT|auto]"]);
int devices, concurrency;
long? fixedInterval, fixedMaxConcurrent;
string work, outPrefix;
try
{
    var arguments = grammar.Parse(args);
    devices = (int)arguments.PositionalLong(0, 0, 1, 10_000_000);
    work = Path.GetFullPath(arguments.Positionals[1]);
    outPrefix = Path.GetFullPath(arguments.Positionals[2]);
    concurrency = (int)arguments.PositionalLong(3, 64, 1, 100_000);
    fixedInterval = arguments.Positional(4) is null or "auto" ? null : arguments.PositionalLong(4, 0, 1);
    fixedMaxConcurrent = arguments.Positional(5) is null or "auto" ? null : arguments.PositionalLong(5, 0, 1, int.MaxValue);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"{e.Message}   (env FLEET_WAVES=1,10,100)");
    return 2;
}
// Idle check-ins are journaled only when the persisted last-seen is older than Devices:LastSeenPersistInterval (5 min
// by default), so idle load is HTTP and actor work, not journal writes. "auto": up to 20 000 devices, check-ins every
// max(20, N/250) s (about 250 check-ins/s) and a phased rollout of 1 %, 10 %, 100 % with maxConcurrent N/5. Larger
// fleets: the same ~250 check-ins/s (every N/250 s: 400 s ± 50 % at 100k) and one 100 % wave with maxConcurrent 0.4 N
// (each wave waits about one check-in interval for its devices to call in); the node is configured for that interval
// as an operator would: Devices:OfflineAfter 3 intervals, Devices:LastSeenPersistInterval 1.5 intervals (above the
// longest jittered gap, so idle check-ins write nothing until then). FLEET_WAVES (e.g. "1,10,100") overrides the waves.
var large = devices > 20_000;
var interval = fixedInterval ?? Math.Max(20, devices / 250.0);
var maxConcurrent = fixedMaxConcurrent is { } m ? (int)m : large ? devices * 2 / 5 : Math.Max(100, devices / 5);
var wavePercents = (Environment.GetEnvironmentVariable("FLEET_WAVES") is { Length: > 0 } w ? w : large ? "100" : "1,10,100")
    .Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToList();
const string RolloutId = "bench";
if (Directory.Exists(work)) Directory.Delete(work, true);
Directory.CreateDirectory(work);
// The node's databases: under the work directory unless FLEET_DATA_DIR says otherwise. With device zones on a tmpfs, a
// 100k run needs the databases on disk: the SQLite WAL of devices.db grew to 11 GB in 400 s (never checkpointed while
// registries and recoveries keep reading) and, in RAM, got the process OOM-killed (bench/results/fleet.md).
var dataDir = Environment.GetEnvironmentVariable("FLEET_DATA_DIR") is { Length: > 0 } dd ? Path.GetFullPath(dd) : Path.Combine(work, "data");
if (dataDir != Path.Combine(work, "data") && Directory.Exists(dataDir)) Directory.Delete(dataDir, true);
var terminal = Console.Out;
Console.SetOut(new StreamWriter(Path.Combine(work, "node.log")) { AutoFlush = true });
void Say(string m) => terminal.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {m}");

var app = NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
{
    ["Urls"] = "http://127.0.0.1:0", ["Node:DataDirectory"] = dataDir, ["Node:StoreRoot"] = Path.Combine(work, "store"),
    ["Node:Port"] = "0", ["Logging:LogLevel:Default"] = "Warning",
    ["Devices:OfflineAfter"] = TimeSpan.FromSeconds(Math.Max(900, 3 * interval)).ToString(),
    ["Devices:LastSeenPersistInterval"] = TimeSpan.FromSeconds(Math.Max(300, 1.5 * interval)).ToString(),
}));
await app.StartAsync();
var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";
var token = File.ReadAllText(app.Services.GetRequiredService<AdminTokens>().BootstrapFile!).Trim();
using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(120) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
for (var i = 0; !(await http.GetAsync("health/ready")).IsSuccessStatusCode; i++) await Task.Delay(100);

// A small client program (3 files, ~40 KiB): the benchmark measures the fleet machinery, not bulk transfer.
var keys = KeyFiles.Generate(Path.Combine(work, "keys"));
var tree = Path.Combine(work, "release");
Directory.CreateDirectory(Path.Combine(tree, "bin"));
var rnd = new Random(1);
byte[] Bytes(int n) { var b = new byte[n]; rnd.NextBytes(b); return b; }
File.WriteAllBytes(Path.Combine(tree, "bin", "app"), Bytes(24_000));
File.WriteAllBytes(Path.Combine(tree, "lib.so"), Bytes(16_000));
File.WriteAllText(Path.Combine(tree, "README"), "bench\n");
using var signing = KeyFiles.LoadSigningKey(keys.Directory);
var release = new Publisher(app.Services.GetRequiredService<FileSystemStore>(), KeyFiles.LoadContentKey(keys.Directory), signing)
    .Publish(new PublishRequest("bench", "1.0", tree));

using var fleet = new FleetSimulator(new SimulationOptions
{
    Devices = devices, Gateway = baseUrl, Root = Path.Combine(work, "devices"), Product = "bench",
    ContentKey = File.ReadAllBytes(Path.Combine(keys.Directory, KeyFiles.ContentKeyFile)),
    TrustRoot = File.ReadAllBytes(Path.Combine(keys.Directory, KeyFiles.PublicKeyFile)),
    Concurrency = concurrency, CheckInIntervalSeconds = interval, JitterFraction = 0.5, StartSpreadSeconds = interval, Seed = 1, // powered-on fleet: check-ins already spread over the interval
    Download = new() { Parallelism = 2, BackoffBaseMilliseconds = 500, BackoffCapMilliseconds = 10_000, RequestTimeoutSeconds = 60 },
});
var sw = Stopwatch.StartNew();
var admin = new AdminCredentialSource(http, baseUrl, token);
await fleet.PrepareAsync(admin.ProvisionAsync, CancellationToken.None);
var provisionSeconds = sw.Elapsed.TotalSeconds;
Say($"{devices} device folders created and credentials provisioned in {provisionSeconds:0.0} s");

// What an operator does before a tag-based rollout: register each device's product and tags (one journaled event each),
// in batches of DeviceBatchRegistrationRequest.MaxDevices through POST /admin/v1/devices/register-batch (what
// `orch device register-batch` sends), two batches at a time.
sw.Restart();
await Parallel.ForEachAsync(fleet.Devices.Chunk(DeviceBatchRegistrationRequest.MaxDevices), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (batch, ct) =>
{
    var body = new DeviceBatchRegistrationRequest(batch.Select(d => new DeviceBatchEntry(d.DeviceId, "bench", ["bench"])).ToList());
    using var r = await http.PostAsJsonAsync("admin/v1/devices/register-batch", body, ct);
    if (!r.IsSuccessStatusCode) throw new InvalidOperationException($"register-batch from {batch[0].DeviceId}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
});
var registerSeconds = sw.Elapsed.TotalSeconds;
// The rollout selects from the device registry (a read model following the journal): wait until it saw every registration.
var registry = await app.Services.GetRequiredService<IRequiredActor<DeviceRegistryActor>>().GetAsync();
while ((await registry.Ask<DeviceList>(new QueryDevices(null, null, "bench", null, 1), TimeSpan.FromSeconds(60))).Total < devices) await Task.Delay(500);
var registrySeconds = sw.Elapsed.TotalSeconds;
Say($"registered in {registerSeconds:0.0} s (registry caught up at {registrySeconds:0.0} s)");

var dbPath = Path.Combine(dataDir, "devices.db");
long JournalRows()
{
    using var c = new SqliteConnection($"Data Source={dbPath};Mode=ReadOnly");
    c.Open();
    using var cmd = c.CreateCommand();
    cmd.CommandText = "SELECT COALESCE(MAX(ordering), 0) FROM journal";
    return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
}
// The rollout view; null while the node answers 503 (the rollout actor does not answer queries while a pass with
// thousands of device asks is running, and the admin route gives up after 15 s) or 404 (the rollout actor stopped
// on a journal failure and is being restarted). Counted, never hidden.
var unavailable = 0;
async Task<RolloutView?> ViewAsync()
{
    using var r = await http.GetAsync($"admin/v1/rollouts/{RolloutId}");
    var body = await r.Content.ReadAsStringAsync();
    // 404 for a rollout that exists: its actor failed (journal circuit breaker open) and is being restarted.
    if (r.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.NotFound) { unavailable++; return null; }
    if (!r.IsSuccessStatusCode) throw new InvalidOperationException($"GET rollout: {(int)r.StatusCode} {body}");
    return JsonSerializer.Deserialize<RolloutView>(body, AdminJson.Options)!;
}

// The fleet starts checking in and the rollout is created at the same moment.
var journalBefore = JournalRows();
var proc = Process.GetCurrentProcess();
long peak = 0;
RolloutView? done = null;
var run = fleet.RunAsync(TimeSpan.FromSeconds(1), null, s => Volatile.Read(ref done) is not null && s.AtLeast(release.VersionId) == s.Devices,
    CancellationToken.None);
var wall = Stopwatch.StartNew();
using (var created = await http.PostAsJsonAsync("admin/v1/rollouts", new
       {
           id = RolloutId, product = "bench", version = "1.0", selector = new { tags = new[] { "bench" } },
           waves = wavePercents.Select(p => new { percent = p }).ToList(),
           maxConcurrent, successThreshold = 0.95, errorThreshold = 0.05, maxAttemptsPerDevice = 50, soakSeconds = 0, @operator = "fleet-bench",
       }))
{
    if (created.StatusCode != HttpStatusCode.Created)
        throw new InvalidOperationException($"create rollout: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
}
Say($"rollout '{RolloutId}' created: waves {string.Join(", ", wavePercents.Select(p => $"{p} %"))}, maxConcurrent {maxConcurrent}, check-ins every {interval:0} s ± 50 %, {concurrency} sessions at once");

await using var csv = new StreamWriter(outPrefix + ".csv") { AutoFlush = true };
csv.WriteLine("seconds,rollout_succeeded,rollout_in_flight,wave,installed,check_ins,running,failed_attempts,journal_events,working_set_mb");
var journalPeakRate = 0.0;
var lastJournal = journalBefore;
var lastT = 0.0;
RolloutView? last = null;
var lastFailedReported = 0L;
for (var tick = 1; ; tick++)
{
    await Task.Delay(TimeSpan.FromSeconds(tick) - wall.Elapsed is { Ticks: > 0 } d ? d : TimeSpan.Zero);
    var t = wall.Elapsed.TotalSeconds;
    var view = await ViewAsync() ?? last;
    if (view is null) continue;
    last = view;
    var s = fleet.Snapshot();
    var journal = JournalRows();
    proc.Refresh();
    peak = Math.Max(peak, proc.WorkingSet64);
    var ok = view.Waves.Sum(w => w.Succeeded);
    var inFlight = view.Waves.Sum(w => w.InProgress);
    csv.WriteLine($"{t:0.0},{ok},{inFlight},{view.CurrentWave},{s.AtLeast(release.VersionId)},{s.CheckIns},{s.Running},{s.FailedAttempts},{journal - journalBefore},{proc.WorkingSet64 / 1048576}");
    if (tick >= 10) journalPeakRate = Math.Max(journalPeakRate, (journal - lastJournal) / (t - lastT));
    lastJournal = journal;
    lastT = t;
    if (tick % 10 == 0)
        Say($"{t:0}s rollout {view.Status} wave {view.CurrentWave}: {ok}/{devices} succeeded, {inFlight} in flight, {view.Waves.Sum(w => w.Failed)} failed | " +
            $"fleet: {s.AtLeast(release.VersionId)} installed, {s.CheckIns} check-ins, {s.FailedAttempts} failed attempts | {journal - journalBefore} events | {proc.WorkingSet64 / 1048576} MiB");
    // When attempts start failing, say why while it happens (a stall in the middle of a run is otherwise only a number).
    if (tick % 10 == 0 && s.FailedAttempts > lastFailedReported)
    {
        Say($"  failures so far: {string.Join("; ", fleet.TopFailures(3).Select(f => $"{f.Count} x {f.Reason}"))}");
        lastFailedReported = s.FailedAttempts;
    }
    if (view.Status == RolloutStatus.Completed) { Volatile.Write(ref done, view); break; }
    if (view.Status != RolloutStatus.Running)
    {
        Say($"rollout stopped in state {view.Status}: {view.PauseReason}; failures: {string.Join("; ", view.Failures.Take(5).Select(f => $"{f.DeviceId}: {f.Reason}"))}");
        break;
    }
}
var completedWall = wall.Elapsed.TotalSeconds;
if (done is null)
{
    Say("rollout did not complete; stopping");
    await app.StopAsync();
    return 1;
}
var final = await run;
var journalAfter = JournalRows();
proc.Refresh();
peak = Math.Max(peak, proc.PeakWorkingSet64);
var rolloutSeconds = (done.UpdatedAt - done.CreatedAt).TotalSeconds;
var events = journalAfter - journalBefore;
var summary =
    $"devices={devices} concurrency={concurrency} interval_s={interval:0} max_concurrent={maxConcurrent} waves={string.Join("/", wavePercents)} " +
    $"data_dir={(dataDir.StartsWith(work, StringComparison.Ordinal) ? "work" : dataDir)} offline_after_s={Math.Max(900, 3 * interval):0} last_seen_persist_s={Math.Max(300, 1.5 * interval):0} provision_s={provisionSeconds:0.0} " +
    $"register_s={registerSeconds:0.0} registry_caught_up_s={registrySeconds:0.0} rollout_s={rolloutSeconds:0.0} rollout_wall_s={completedWall:0.0} " +
    $"installs_per_s={devices / rolloutSeconds:0.0} check_ins={final.CheckIns} check_ins_per_s={final.CheckIns / final.ElapsedSeconds:0.0} upgrades={final.Upgrades} " +
    $"failed_attempts={final.FailedAttempts} rollout_failed={done.Waves.Sum(w => w.Failed)} journal_events={events} events_per_s={events / final.ElapsedSeconds:0.0} " +
    $"events_per_s_peak={journalPeakRate:0} rollout_view_unavailable={unavailable} peak_working_set_mb={peak / 1048576} bytes_downloaded={final.BytesDownloaded} loadavg=\"{File.ReadAllText("/proc/loadavg").Trim()}\"";
File.WriteAllText(outPrefix + ".txt", summary + "\n");
Say(summary);
foreach (var (reason, count) in fleet.TopFailures(5)) Say($"  {count} x {reason}");
await app.StopAsync();
return 0;
