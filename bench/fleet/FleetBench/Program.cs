// Fleet load benchmark: one node (all roles, SQLite, filesystem store) and N simulated devices (real agent
// sessions, real zones on disk) in one process; every device is assigned the release through the device shard
// region (what a rollout wave sends) and the run ends when every device reports it installed.
// usage: FleetBench <devices> <work-dir> <out-prefix> [concurrency]
using System.Diagnostics;
using System.Globalization;
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
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var devices = int.Parse(args[0], CultureInfo.InvariantCulture);
var work = Path.GetFullPath(args[1]);
var outPrefix = Path.GetFullPath(args[2]);
var concurrency = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 64;
if (Directory.Exists(work)) Directory.Delete(work, true);
Directory.CreateDirectory(work);
var terminal = Console.Out;
Console.SetOut(new StreamWriter(Path.Combine(work, "node.log")) { AutoFlush = true });
void Say(string m) => terminal.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {m}");

var app = NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
{
    ["Urls"] = "http://127.0.0.1:0", ["Node:DataDirectory"] = Path.Combine(work, "data"), ["Node:StoreRoot"] = Path.Combine(work, "store"),
    ["Node:Port"] = "0", ["Logging:LogLevel:Default"] = "Warning", ["Gateway:NextCheckInSeconds"] = "60",
}));
await app.StartAsync();
var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";
var token = File.ReadAllText(app.Services.GetRequiredService<AdminTokens>().BootstrapFile!).Trim();
using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
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
    Concurrency = concurrency, CheckInIntervalSeconds = 20, JitterFraction = 0.5, StartSpreadSeconds = 10, Seed = 1,
    Download = new() { Parallelism = 2, BackoffBaseMilliseconds = 500, BackoffCapMilliseconds = 10_000, RequestTimeoutSeconds = 60 },
});
var sw = Stopwatch.StartNew();
var admin = new AdminCredentialSource(http, baseUrl, token);
await fleet.PrepareAsync(admin.ProvisionAsync, CancellationToken.None);
var provisionSeconds = sw.Elapsed.TotalSeconds;
Say($"{devices} devices provisioned in {provisionSeconds:0.0} s");

var region = await app.Services.GetRequiredService<IRequiredActor<DeviceShardRegion>>().GetAsync();
sw.Restart();
await Parallel.ForEachAsync(fleet.Devices, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (d, _) =>
{
    var answer = await region.Ask<object>(new AssignTarget(d.DeviceId, "bench", release.Version, release.VersionId, release.ManifestPath, "bench"), TimeSpan.FromSeconds(60));
    if (answer is not DeviceCommandAccepted) throw new InvalidOperationException($"{d.DeviceId}: {answer}");
});
var assignSeconds = sw.Elapsed.TotalSeconds;
Say($"assigned in {assignSeconds:0.0} s");

long JournalRows()
{
    using var c = new SqliteConnection($"Data Source={Path.Combine(work, "data", "devices.db")};Mode=ReadOnly");
    c.Open();
    using var cmd = c.CreateCommand();
    cmd.CommandText = "SELECT COUNT(*) FROM journal";
    return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
}
var journalBefore = JournalRows();
var proc = Process.GetCurrentProcess();
long peak = 0;
var csv = new List<string> { "seconds,installed,check_ins,running,failed_attempts,working_set_mb" };
var final = await fleet.RunAsync(TimeSpan.FromSeconds(1), s =>
{
    proc.Refresh();
    peak = Math.Max(peak, proc.WorkingSet64);
    csv.Add($"{s.ElapsedSeconds:0.0},{s.AtLeast(release.VersionId)},{s.CheckIns},{s.Running},{s.FailedAttempts},{proc.WorkingSet64 / 1048576}");
    if (csv.Count % 10 == 0) Say(SimulateCommand.Describe(s, release.VersionId));
}, s => s.AtLeast(release.VersionId) == s.Devices, CancellationToken.None);
var journalAfter = JournalRows();
proc.Refresh();
peak = Math.Max(peak, proc.PeakWorkingSet64);
File.WriteAllLines(outPrefix + ".csv", csv);
var summary =
    $"devices={devices} concurrency={concurrency} provision_s={provisionSeconds:0.0} assign_s={assignSeconds:0.0} rollout_s={final.ElapsedSeconds:0.0} " +
    $"check_ins={final.CheckIns} check_ins_per_s={final.CheckIns / final.ElapsedSeconds:0.0} upgrades={final.Upgrades} failed_attempts={final.FailedAttempts} " +
    $"journal_events={journalAfter - journalBefore} events_per_s={(journalAfter - journalBefore) / final.ElapsedSeconds:0.0} peak_working_set_mb={peak / 1048576} " +
    $"bytes_downloaded={final.BytesDownloaded}";
File.WriteAllText(outPrefix + ".txt", summary + "\n");
Say(summary);
foreach (var (reason, count) in fleet.TopFailures(5)) Say($"  {count} x {reason}");
await app.StopAsync();
