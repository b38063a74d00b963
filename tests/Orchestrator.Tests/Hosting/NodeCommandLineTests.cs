using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Orchestrator.Node.Hosting;
using Orchestrator.TestSupport;

namespace Orchestrator.Node.Tests.Hosting;

/// <summary>Unknown configuration keys are refused with the nearest valid key; every key the node reads is documented.</summary>
public sealed class ConfigurationKeyTests
{
    private static List<string> Problems(Dictionary<string, string?> values, Dictionary<string, string?>? env = null, params string[] switches) =>
        ConfigurationSchema.Problems(new ConfigurationBuilder().AddInMemoryCollection(values).Build(), env ?? [], switches).ToList();

    [Fact]
    public void A_misspelled_key_under_a_section_names_the_nearest_setting()
    {
        var p = Problems(new() { ["Node:Prot"] = "4054", ["Admin:Tokens:0:Sha265"] = "x", ["Rollouts:Groups:pilot:Tag:0"] = "eu", ["Node:Port"] = "4054" });
        Assert.Equal(3, p.Count);
        Assert.Contains("Node:Prot is not a setting; did you mean Node:Port?", p[0]);
        Assert.Contains(p, x => x.Contains("Admin:Tokens:0:Sha265 is not a setting; did you mean Admin:Tokens:0:Sha256?"));
        Assert.Contains(p, x => x.Contains("Rollouts:Groups:pilot:Tag is not a setting; did you mean Rollouts:Groups:pilot:Tags?"));
    }

    [Fact]
    public void A_value_given_sub_keys_and_a_list_given_names_are_refused()
    {
        var p = Problems(new() { ["Node:Port:x"] = "1", ["Node:SeedNodes:first"] = "akka.tcp://orchestrator@h:1" });
        Assert.Contains(p, x => x.Contains("Node:Port is a single value"));
        Assert.Contains(p, x => x.Contains("Node:SeedNodes:first is not a list position"));
    }

    [Fact]
    public void Prefixed_environment_variables_and_switches_must_name_keys_the_node_reads()
    {
        var env = new Dictionary<string, string?>
        {
            ["ORCH_Url"] = "http://0.0.0.0:5080", ["ORCH_Nod__Port"] = "1", ["ORCH_SERVER"] = "http://gw", ["ORCH_TEST_POSTGRES"] = "Host=x",
            ["ORCH_Urls"] = "http://0.0.0.0:5080", ["PATH"] = "/bin",
        };
        var p = Problems([], env, "Gatway:MaxInventoryFiles");
        Assert.Equal(3, p.Count);
        Assert.Contains(p, x => x.Contains("ORCH_Url sets 'Url', which the node does not read; did you mean 'Urls'?"));
        Assert.Contains(p, x => x.Contains("ORCH_Nod__Port sets 'Nod:Port'") && x.Contains("did you mean 'Node'?"));
        Assert.Contains(p, x => x.Contains("--Gatway:MaxInventoryFiles") && x.Contains("did you mean 'Gateway'?"));
    }

    [Fact]
    public void Every_key_the_node_binds_is_in_docs_configuration_md()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "configuration.md"));
        var missing = ConfigurationSchema.DocumentedKeys().Where(k => !doc.Contains($"`{k}`", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "docs/configuration.md does not document: " + string.Join(", ", missing));
        Assert.Contains("Node:DataDirectory", ConfigurationSchema.DocumentedKeys());
        Assert.Contains("Admin:Tokens:<n>:Scopes:<n>", ConfigurationSchema.DocumentedKeys());
    }

    [Fact]
    public void Every_runtime_setting_the_node_ships_is_documented_with_its_value()
    {
        // The runtimeconfig the build wrote beside the node (the one `dotnet orchestrator.dll` and the image start with).
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "orchestrator.runtimeconfig.json")));
        var shipped = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").EnumerateObject()
            .Where(p => p.Name.StartsWith("System.Runtime.TieredCompilation.", StringComparison.Ordinal) || p.Name.StartsWith("System.GC.", StringComparison.Ordinal))
            .ToDictionary(p => p.Name, p => p.Value.ToString().ToLowerInvariant());
        Assert.Equal("0", shipped["System.Runtime.TieredCompilation.CallCountingDelayMs"]);
        Assert.Equal("1000", shipped["System.Runtime.TieredCompilation.CallCountThreshold"]);
        var rows = DocumentedRuntimeSettings().Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)).ToList();
        foreach (var (name, value) in shipped)
            Assert.True(rows.Any(r => r.StartsWith($"| `{name}` | `{value}`", StringComparison.Ordinal)),
                $"{name}={value} is in the node's runtimeconfig, but docs/configuration.md's \"Runtime settings\" has no row \"| `{name}` | `{value}`\"");
    }

    /// <summary>docs/configuration.md's "Runtime settings" section: the .NET runtime knobs the node ships with.</summary>
    internal static string DocumentedRuntimeSettings()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "configuration.md"));
        return doc[doc.IndexOf("## Runtime settings", StringComparison.Ordinal)..doc.IndexOf("## Node", StringComparison.Ordinal)];
    }

    internal static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Orchestrator.sln"))) return d.FullName;
        throw new InvalidOperationException("Orchestrator.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>The real executable: a command line of its own, and every start-up failure as one line with exit code 2.</summary>
public sealed class NodeCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orch-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<(int Exit, string Out, string Err)> Run(string[] args, Dictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "orchestrator.dll"), .. args])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = _dir,
        };
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"orchestrator {string.Join(' ', args)} still ran after 90 s: it started a node instead of refusing.");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    private static void AssertOneLine(string stderr)
    {
        var lines = stderr.Trim().Split('\n');
        Assert.True(lines.Length == 1, "expected one line on stderr, got:\n" + stderr);
        Assert.StartsWith("orchestrator: ", lines[0]);
    }

    [Fact]
    public async Task Help_and_version_print_and_exit_0_without_starting_a_node()
    {
        var help = await Run(["--help"]);
        Assert.Equal(0, help.Exit);
        Assert.Contains("usage: orchestrator", help.Out);
        Assert.Contains("ORCH_Node__Port=4054", help.Out);
        var version = await Run(["--version"]);
        Assert.Equal(0, version.Exit);
        Assert.Matches(@"^orchestrator \d+\.\d+\.\d+", version.Out);
        Assert.False(Directory.Exists(Path.Combine(_dir, "data")), "help or version created a data folder");
    }

    [Fact]
    public async Task A_node_whose_seed_never_answers_stops_with_exit_code_1_after_its_join_timeout()
    {
        // A seed address where nothing listens: the join is never answered.
        var dead = LoopbackPort.Free();
        var data = Path.Combine(_dir, "data");
        var started = Stopwatch.StartNew();
        var r = await Run([$"--Node:DataDirectory={data}", "--Node:Port=0", "--Urls=http://127.0.0.1:0",
            $"--Node:SeedNodes:0=akka.tcp://orchestrator@127.0.0.1:{dead}", "--Node:JoinTimeout=00:00:05"]);
        Assert.True(r.Exit == 1, $"exit code {r.Exit}; stdout: {r.Out}\nstderr: {r.Err}");
        Assert.Contains("did not join its cluster within Node:JoinTimeout", r.Out + r.Err);
        Assert.True(started.Elapsed >= TimeSpan.FromSeconds(5), $"stopped after {started.Elapsed}, before its join timeout");
    }

    [Fact]
    public async Task A_mistyped_command_is_refused_and_starts_nothing()
    {
        var r = await Run(["dmeo"]);
        Assert.Equal(2, r.Exit);
        AssertOneLine(r.Err);
        Assert.Contains("unknown argument 'dmeo' (did you mean `orchestrator demo`?)", r.Err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "data")), "a refused command created the data folder");
    }

    [Fact]
    public async Task A_delta_level_its_memory_budget_cannot_hold_is_refused_naming_both_keys_and_starts_nothing()
    {
        var data = Path.Combine(_dir, "data");
        var r = await Run([$"--Node:DataDirectory={data}", "--Node:Port=0", "--Urls=http://127.0.0.1:0",
            "--Deltas:Level=22", "--Deltas:MemoryBudgetBytes=300000000"]);
        Assert.Equal(2, r.Exit);
        Assert.Contains("Deltas:Level 22 needs", r.Err);
        Assert.Contains("over Deltas:MemoryBudgetBytes 300000000: raise Deltas:MemoryBudgetBytes to at least", r.Err);
        Assert.Contains("set Deltas:Level to 20 or lower, or remove Deltas:Level to take the highest level that fits", r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.False(Directory.Exists(data), "a refused node created its data folder");
    }

    [Fact]
    public async Task A_misspelled_environment_key_is_refused_with_the_nearest_key()
    {
        var r = await Run([], new() { ["ORCH_Node__Prot"] = "4054" });
        Assert.Equal(2, r.Exit);
        Assert.Contains("Node:Prot is not a setting; did you mean Node:Port?", r.Err);
        Assert.DoesNotContain("   at ", r.Err);
    }

    [Fact]
    public async Task A_second_node_on_a_data_folder_in_use_is_refused_naming_the_holder()
    {
        var data = Path.Combine(_dir, "shared-data");
        await using var first = await RunningNode.StartAsync(RunningNode.Settings(data, Path.Combine(_dir, "store"), "op-token", "read-token"));
        var before = NodeOwnedFiles(data);

        var r = await Run([$"--Node:DataDirectory={data}", "--Node:Port=0", "--Urls=http://127.0.0.1:0"]);
        Assert.Equal(2, r.Exit);
        AssertOneLine(r.Err);
        Assert.Contains($"data folder '{data}' is in use by another node (pid {Environment.ProcessId} on", r.Err);
        Assert.Contains("--Node:DataDirectory=DIR", r.Err);
        // The refused node created nothing in the folder and the first node still answers.
        Assert.Equal(before, NodeOwnedFiles(data));
        using var ready = await first.Http.GetAsync("/health/ready");
        Assert.True(ready.IsSuccessStatusCode);
    }

    /// <summary>
    /// The data folder's files, less SQLite's -wal and -shm: those come and go with the first node's own connections
    /// (the last connection to close removes them), so they say nothing about what the refused node did.
    /// </summary>
    private static List<string> NodeOwnedFiles(string data) =>
        Directory.GetFiles(data).Where(f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task Taken_cluster_and_http_ports_are_refused_before_anything_starts()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var cluster = await Run([$"--Node:DataDirectory={Path.Combine(_dir, "a")}", $"--Node:Port={port}", "--Urls=http://127.0.0.1:0"]);
        Assert.Equal(2, cluster.Exit);
        AssertOneLine(cluster.Err);
        Assert.Contains($"cluster port 127.0.0.1:{port} (Node:Port) is already in use", cluster.Err);

        var http = await Run([$"--Node:DataDirectory={Path.Combine(_dir, "b")}", "--Node:Port=0", $"--Urls=http://127.0.0.1:{port}"]);
        Assert.Equal(2, http.Exit);
        AssertOneLine(http.Err);
        Assert.Contains($"HTTP address http://127.0.0.1:{port} (Urls) is already in use", http.Err);
        // Refused before the data folder was locked: the next node may take it.
        Assert.False(File.Exists(Path.Combine(_dir, "b", DataDirectoryLock.OwnerFileName)));
    }

    [Fact]
    public async Task A_malformed_settings_file_is_one_line_and_exit_2()
    {
        var environment = "Malformed" + Guid.NewGuid().ToString("N")[..8];
        var file = Path.Combine(AppContext.BaseDirectory, $"appsettings.{environment}.json");
        File.WriteAllText(file, "{ \"Node\": { \"Port\": 4054, } oops");
        try
        {
            var r = await Run([], new() { ["ASPNETCORE_ENVIRONMENT"] = environment });
            Assert.Equal(2, r.Exit);
            AssertOneLine(r.Err);
            Assert.Contains($"appsettings.{environment}.json", r.Err);
            Assert.Contains("Fix the JSON syntax of that file.", r.Err);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
