using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Npgsql;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Hosting;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// The cluster of <c>deploy/local/cluster.sh</c>: real node processes (the dotnet build output of src/Orchestrator)
/// on 127.0.0.1 with free HTTP and Akka ports, a fresh PostgreSQL database per run, a shared store folder.
/// Every lifecycle step (start, SIGKILL, stop) goes through the script, so the script is what is tested.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    /// <summary>Nodes of the default cluster (the failover test's three).</summary>
    public const int DefaultNodes = 3;
    private static readonly string Script = Path.Combine(RepoRoot(), "deploy", "local", "cluster.sh");
    private readonly ITestOutputHelper _log;
    private readonly string _adminConnection;
    private readonly string _database;
    private readonly int _httpBase;
    private readonly int _akkaBase;
    private readonly HttpClient[] _admin;
    private readonly IReadOnlyDictionary<string, string> _environment;

    /// <summary>Number of nodes of this cluster.</summary>
    public int Nodes { get; }

    public string Dir { get; }
    public string StoreRoot => Path.Combine(Dir, "store");
    public string ConnectionString { get; }
    public string AdminToken { get; private set; } = "";
    private readonly HashSet<int> _alive = [];

    /// <summary>Nodes not killed (a snapshot: device sessions read it while a kill is under way).</summary>
    public IReadOnlyList<int> Alive { get { lock (_alive) return [.. _alive.Order()]; } }

    private LocalCluster(ITestOutputHelper log, string adminConnection, string database, string connectionString, int httpBase, int akkaBase,
        int nodes, IReadOnlyDictionary<string, string> environment)
    {
        Nodes = nodes;
        _admin = new HttpClient[nodes + 1];
        _environment = environment;
        _log = log;
        _adminConnection = adminConnection;
        _database = database;
        ConnectionString = connectionString;
        _httpBase = httpBase;
        _akkaBase = akkaBase;
        Dir = Path.Combine(Path.GetTempPath(), "orch-cluster-e2e", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Dir);
    }

    public Uri HttpUrl(int node) => new($"http://127.0.0.1:{_httpBase + node - 1}/");
    public string AkkaAddress(int node) => $"akka.tcp://orchestrator@127.0.0.1:{_akkaBase + node - 1}";
    public string NodeLog(int node) => Path.Combine(Dir, $"node-{node}", "node.log");

    /// <summary>Admin API client of <paramref name="node"/> (bearer token set).</summary>
    public HttpClient Admin(int node) => _admin[node];

    /// <summary>Creates an empty database named <paramref name="prefix"/> + a random suffix on the server of <paramref name="postgres"/>.</summary>
    /// <returns>Its name and a connection string to it.</returns>
    public static async Task<(string Database, string ConnectionString)> FreshDatabaseAsync(string postgres, string prefix)
    {
        var database = prefix + Guid.NewGuid().ToString("N")[..12];
        var csb = new NpgsqlConnectionStringBuilder(postgres);
        await using (var c = new NpgsqlConnection(csb.ConnectionString))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", c);
            await cmd.ExecuteNonQueryAsync();
        }
        csb.Database = database;
        return (database, csb.ConnectionString);
    }

    /// <summary>
    /// Creates a fresh database on the server of <paramref name="postgres"/>, then starts <paramref name="nodes"/> nodes
    /// and waits until all are Ready. <paramref name="environment"/> is passed to every node (e.g. <c>ORCH_Throttle__DeviceBytesPerSecond</c>).
    /// </summary>
    public static async Task<LocalCluster> StartAsync(string postgres, ITestOutputHelper log, int nodes = DefaultNodes,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var (database, connectionString) = await FreshDatabaseAsync(postgres, "orch_cluster_");
        var cluster = new LocalCluster(log, postgres, database, connectionString, FreePortRun(nodes), FreePortRun(nodes), nodes,
            environment ?? new Dictionary<string, string>());
        try
        {
            await cluster.RunScriptAsync(TimeSpan.FromSeconds(150), "start");
            cluster.AdminToken = (await File.ReadAllTextAsync(Path.Combine(cluster.Dir, "admin-token"))).Trim();
            for (var n = 1; n <= nodes; n++)
            {
                cluster._admin[n] = new HttpClient { BaseAddress = cluster.HttpUrl(n), Timeout = TimeSpan.FromSeconds(20) };
                cluster._admin[n].DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", cluster.AdminToken);
                lock (cluster._alive) cluster._alive.Add(n);
            }
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>A crash: <c>cluster.sh kill N</c> sends SIGKILL (no CoordinatedShutdown, no leave).</summary>
    public async Task KillAsync(int node)
    {
        await RunScriptAsync(TimeSpan.FromSeconds(30), "kill", node.ToString());
        lock (_alive) _alive.Remove(node);
    }

    /// <summary>
    /// <c>cluster.sh stop N</c>: SIGTERM, so the node runs CoordinatedShutdown (hands its shards off, leaves).
    /// Returns how long the node took to exit; fails if the script had to fall back to SIGKILL.
    /// </summary>
    public async Task<TimeSpan> StopGracefullyAsync(int node)
    {
        var sw = Stopwatch.StartNew();
        var output = await RunScriptAsync(TimeSpan.FromSeconds(90), "stop", node.ToString());
        Assert.DoesNotContain("SIGKILL", output);
        lock (_alive) _alive.Remove(node);
        return sw.Elapsed;
    }

    /// <summary><c>cluster.sh restart N</c>: starts the node again and waits until it is Ready (an Up member).</summary>
    public async Task RestartAsync(int node)
    {
        await RunScriptAsync(TimeSpan.FromSeconds(120), "restart", node.ToString());
        lock (_alive) _alive.Add(node);
    }

    /// <summary>GET of an admin route, read with the admin API's own JSON contract (<see cref="AdminJson.Options"/>).</summary>
    public async Task<T> GetAsync<T>(int node, string path, CancellationToken ct = default)
    {
        using var res = await Admin(node).GetAsync(path, ct);
        var body = await res.Content.ReadAsStringAsync(ct);
        if (!res.IsSuccessStatusCode) throw new HttpRequestException($"GET {path} on node {node}: {(int)res.StatusCode} {body}", null, res.StatusCode);
        return JsonSerializer.Deserialize<T>(body, AdminJson.Options) ?? throw new JsonException($"GET {path}: empty answer");
    }

    public async Task<(HttpStatusCode Status, string Body)> PostJsonAsync(int node, string path, object body)
    {
        using var res = await Admin(node).PostAsJsonAsync(path, body);
        return (res.StatusCode, await res.Content.ReadAsStringAsync());
    }

    /// <summary>Waits until every node of this cluster is Up as node 1 sees it; fails naming what each member is.</summary>
    public Task WaitUntilAllUpAsync(string what, TimeSpan timeout) =>
        WaitUntilAsync(what, timeout, async () =>
        {
            var view = await GetAsync<ClusterView>(1, "admin/v1/cluster");
            var up = view.Members.Where(m => m.Status == "Up").Select(m => m.Address).ToHashSet();
            return (up.SetEquals(Enumerable.Range(1, Nodes).Select(AkkaAddress)), Describe(view));
        });

    /// <summary>
    /// Waits until every node sees every node Up and reachable: each has gossiped with the others, so a node killed
    /// afterwards is a member all survivors are associated with (not one still joining on some of them).
    /// </summary>
    public Task WaitUntilConvergedAsync(string what, TimeSpan timeout) =>
        WaitUntilAsync(what, timeout, async () =>
        {
            var all = Enumerable.Range(1, Nodes).Select(AkkaAddress).ToHashSet();
            var states = new List<string>();
            var done = true;
            for (var node = 1; node <= Nodes; node++)
            {
                var view = await GetAsync<ClusterView>(node, "admin/v1/cluster");
                done &= view.UnreachableCount == 0 && view.Members.Where(m => m.Status == "Up").Select(m => m.Address).ToHashSet().SetEquals(all);
                states.Add($"node {node}: {Describe(view)}");
            }
            return (done, string.Join(" | ", states));
        });

    /// <summary>One line naming each member, its status and whether it is reachable (for failure messages).</summary>
    public static string Describe(ClusterView v) =>
        $"{v.UnreachableCount} unreachable; " + string.Join(", ", v.Members.Select(m => $"{m.Address} {m.Status}{(m.Reachable ? "" : " (unreachable)")}"));

    /// <summary>Sum of <paramref name="node"/>'s samples of a Prometheus metric family whose labels contain <paramref name="labels"/>.</summary>
    public async Task<double> MetricAsync(int node, string name, params string[] labels) =>
        PrometheusText.Sum(await Admin(node).GetStringAsync("metrics"), name, labels);

    /// <summary>Provisions <paramref name="deviceId"/> through node 1's admin API and returns its secret.</summary>
    public async Task<string> ProvisionAsync(string deviceId)
    {
        var (status, body) = await PostJsonAsync(1, $"admin/v1/devices/{deviceId}/credential", new { });
        if (status is not (HttpStatusCode.OK or HttpStatusCode.Created)) throw new HttpRequestException($"provision {deviceId}: {(int)status} {body}");
        return JsonSerializer.Deserialize<Orchestrator.Node.Admin.ProvisionResponse>(body, Orchestrator.Node.Gateway.HttpProblems.Json)!.Secret;
    }

    /// <summary>Polls <paramref name="probe"/> (every 250 ms) until it returns true; fails with <paramref name="what"/> and the last state.</summary>
    public static async Task WaitUntilAsync(string what, TimeSpan timeout, Func<Task<(bool Done, string State)>> probe)
    {
        var sw = Stopwatch.StartNew();
        var last = "";
        while (sw.Elapsed < timeout)
        {
            try
            {
                var (done, state) = await probe();
                last = state;
                if (done) return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or InvalidOperationException)
            {
                last = ex.Message;
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"{what} not reached within {timeout.TotalSeconds:0} s; last state: {last}");
    }

    private async Task<string> RunScriptAsync(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["ORCH_LOCAL_DIR"] = Dir;
        psi.Environment["ORCH_LOCAL_NODES"] = Nodes.ToString();
        psi.Environment["ORCH_LOCAL_HTTP_BASE"] = _httpBase.ToString();
        psi.Environment["ORCH_LOCAL_AKKA_BASE"] = _akkaBase.ToString();
        psi.Environment["ORCH_LOCAL_PG"] = ConnectionString;
        psi.Environment["ORCH_LOCAL_NODE_DLL"] = NodeBinary();
        psi.Environment["ORCH_LOCAL_READY_TIMEOUT"] = ((int)timeout.TotalSeconds - 10).ToString();
        psi.Environment["ORCH_LOCAL_LOG_LEVEL"] = "Information";
        psi.Environment[RunningNode.BusyRuleOffVariable] = RunningNode.BusyRuleOff.Value;
        // cluster.sh starts the nodes with `env`, which keeps this environment: extra node settings pass through.
        foreach (var (key, value) in _environment) psi.Environment[key] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: false);
            throw new TimeoutException($"cluster.sh {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:0} s: {await stdout}{await stderr}");
        }
        var output = (await stdout) + (await stderr);
        _log.WriteLine($"$ cluster.sh {string.Join(' ', args)}\n{output}");
        if (p.ExitCode != 0) throw new InvalidOperationException($"cluster.sh {string.Join(' ', args)} exited {p.ExitCode}: {output}");
        return output;
    }

    /// <summary>The node executable as built by <c>dotnet build src/Orchestrator</c> (same configuration as this test).</summary>
    private static string NodeBinary()
    {
        var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = tfm.Parent!.Name; // .../bin/<Configuration>/<tfm>/
        var dll = Path.Combine(RepoRoot(), "src", "Orchestrator", "bin", configuration, tfm.Name, typeof(NodeApp).Assembly.GetName().Name + ".dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"node binary {dll} is missing; dotnet build src/Orchestrator -c {configuration}");
        return dll;
    }

    /// <summary>First of <paramref name="nodes"/> consecutive free loopback ports (checked by binding each).</summary>
    private static int FreePortRun(int nodes)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var start = Random.Shared.Next(20_000, 60_000);
            var listeners = new List<TcpListener>();
            try
            {
                for (var i = 0; i < nodes; i++)
                {
                    var l = new TcpListener(IPAddress.Loopback, start + i);
                    l.Start();
                    listeners.Add(l);
                }
                return start;
            }
            catch (SocketException) { }
            finally
            {
                foreach (var l in listeners) l.Stop();
            }
        }
        throw new InvalidOperationException("no run of free loopback ports found");
    }

    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Orchestrator.sln"))) return d.FullName;
        throw new InvalidOperationException($"Orchestrator.sln not found above {AppContext.BaseDirectory}");
    }

    public async ValueTask DisposeAsync()
    {
        try { await RunScriptAsync(TimeSpan.FromSeconds(120), "stop"); }
        catch (Exception ex) { _log.WriteLine($"cluster.sh stop failed: {ex.Message}"); }
        foreach (var c in _admin) c?.Dispose();
        // The folder goes with the cluster; the logs are kept (and their tails shown with a failed test's output) so a
        // failure that only happens on CI can be read afterwards.
        var kept = Path.Combine(Path.GetTempPath(), "orch-cluster-logs", _database);
        for (var n = 1; n <= Nodes; n++)
        {
            if (!File.Exists(NodeLog(n))) continue;
            Directory.CreateDirectory(kept);
            File.Copy(NodeLog(n), Path.Combine(kept, $"node-{n}.log"), overwrite: true);
            _log.WriteLine($"--- node {n} log (last 60 lines; whole log kept in {kept}) ---\n{string.Join('\n', File.ReadLines(NodeLog(n)).TakeLast(60))}");
        }
        await using (var c = new NpgsqlConnection(_adminConnection))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_database}\" WITH (FORCE)", c);
            await cmd.ExecuteNonQueryAsync();
        }
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
