using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

public sealed class ConfigurationTests
{
    private static NodeSettings Load(Dictionary<string, string?> values) =>
        NodeSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Defaults_are_valid_with_all_roles()
    {
        var s = Load([]);
        Assert.Equal(NodeRoles.All, s.Node.Roles);
        Assert.Equal("sqlite", s.Database.Provider);
    }

    [Fact]
    public void A_burst_or_window_that_can_never_admit_the_largest_chunk_stops_the_node_with_the_setting_named()
    {
        using var dir = new TempFolder();
        var ex = Assert.Throws<InvalidOperationException>(() => NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Node:DataDirectory"] = Path.Combine(dir.Path, "data"),
            ["Node:StoreRoot"] = Path.Combine(dir.Path, "store"),
            ["Throttle:DeviceBurstBytes"] = "200000",
            ["Throttle:DeviceMaxBytesPerWindow"] = "100000",
        })));
        // The default chunk bound (256 KiB) plus the codec's header and tag.
        Assert.Contains("Throttle:DeviceBurstBytes (200000) is smaller than the largest object a device may fetch (262184 bytes", ex.Message);
        Assert.Contains("Set Throttle:DeviceBurstBytes to at least 262184", ex.Message);
        Assert.Contains("Throttle:DeviceMaxBytesPerWindow (100000)", ex.Message);
        Assert.DoesNotContain("GlobalBurstBytes", ex.Message);
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("orch-config-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    [Fact]
    public void Configured_roles_replace_the_default_list()
    {
        var s = Load(new() { ["Node:Roles:0"] = "gateway" });
        Assert.Equal(["gateway"], s.Node.Roles);
    }

    [Fact]
    public void Every_problem_is_reported_with_the_setting_named()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new()
        {
            ["Node:Roles:0"] = "gatewya",
            ["Node:Port"] = "70000",
            ["Database:Provider"] = "postgresql",
            ["ChunkStore:Backend"] = "s3",
            ["Throttle:DeviceBytesPerSecond"] = "0",
            ["Gateway:Mirrors:0"] = "ftp://mirror",
        }));
        foreach (var expected in new[] { "unknown role 'gatewya'", "Node:Port 70000", "Database:ConnectionString is required", "ChunkStore:Backend 's3'", "Throttle:DeviceBytesPerSecond", "Gateway:Mirrors entry 'ftp://mirror'" })
            Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Device_actor_settings_come_from_the_devices_section_and_the_persist_interval_must_be_below_the_offline_timeout()
    {
        var defaults = Load([]).Devices.ToSettings();
        Assert.Equal(TimeSpan.FromMinutes(15), defaults.OfflineAfter);
        Assert.Equal(TimeSpan.FromMinutes(10), defaults.LastSeenPersistInterval);
        var s = Load(new() { ["Devices:OfflineAfter"] = "00:30:00", ["Devices:LastSeenPersistInterval"] = "00:20:00" }).Devices.ToSettings();
        Assert.Equal((TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(20)), (s.OfflineAfter, s.LastSeenPersistInterval));
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Devices:LastSeenPersistInterval"] = "00:15:00" }));
        Assert.Contains("Devices:LastSeenPersistInterval 00:15:00 must be 0 or more and shorter than Devices:OfflineAfter (00:15:00)", ex.Message);
    }

    [Fact]
    public void Channel_refresh_interval_is_a_setting_and_out_of_range_values_are_refused_with_the_setting_named()
    {
        Assert.Equal(TimeSpan.FromSeconds(10), Load([]).Gateway.ChannelRefreshInterval);
        Assert.Equal(TimeSpan.FromSeconds(3), Load(new() { ["Gateway:ChannelRefreshInterval"] = "00:00:03" }).Gateway.ChannelRefreshInterval);
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Gateway:ChannelRefreshInterval"] = "00:00:00.100" }));
        Assert.Contains("Gateway:ChannelRefreshInterval (00:00:00.1000000) must be between 00:00:01 and 01:00:00", ex.Message);
    }

    [Fact]
    public void Offline_timeout_must_cover_two_check_in_intervals()
    {
        Assert.Equal(300, Load([]).Gateway.NextCheckInSeconds);
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Gateway:NextCheckInSeconds"] = "3600" }));
        Assert.Contains("Devices:OfflineAfter (00:15:00) must be at least twice Gateway:NextCheckInSeconds (3600 s)", ex.Message);
        Assert.Contains("raise Devices:OfflineAfter to 02:00:00 or more", ex.Message);
        var ok = Load(new() { ["Gateway:NextCheckInSeconds"] = "3600", ["Devices:OfflineAfter"] = "03:00:00" });
        Assert.Equal(TimeSpan.FromHours(3), ok.Devices.OfflineAfter);
    }

    [Fact]
    public void Cluster_bootstrap_settings_are_checked_naming_the_fix()
    {
        var both = Assert.Throws<InvalidOperationException>(() => Load(new()
        {
            ["Node:Discovery"] = "config", ["Node:DiscoveryEndpoints:0"] = "127.0.0.1:5081",
            ["Node:SeedNodes:0"] = "akka.tcp://orchestrator@127.0.0.1:4053",
        }));
        Assert.Contains("Node:SeedNodes and Node:Discovery 'config' are both set", both.Message);
        var noEndpoints = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Node:Discovery"] = "config" }));
        Assert.Contains("Node:DiscoveryEndpoints is empty", noEndpoints.Message);
        var badEndpoint = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Node:Discovery"] = "config", ["Node:DiscoveryEndpoints:0"] = "node-1" }));
        Assert.Contains("Node:DiscoveryEndpoints entry 'node-1' is not host:port", badEndpoint.Message);
        var unknown = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Node:Discovery"] = "dns" }));
        Assert.Contains("Node:Discovery 'dns' is unknown", unknown.Message);
        var ok = Load(new() { ["Node:Discovery"] = "kubernetes-api", ["Node:DiscoveryContactPoints"] = "3" });
        Assert.Equal(("kubernetes-api", 3), (ok.Node.Discovery, ok.Node.DiscoveryContactPoints));
    }

    [Fact]
    public void Unparseable_value_names_the_setting()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Load(new() { ["Node:Port"] = "abc" }));
        Assert.Contains("Node:Port", ex.Message);
    }
}

/// <summary>The real executable refuses bad configuration, and a database it was not built for, before starting anything.</summary>
public sealed class ProgramStartupTests
{
    [Fact]
    public async Task Invalid_environment_overrides_exit_2_listing_every_problem()
    {
        var (exitCode, stderr) = await RunNode(new()
        {
            ["ORCH_Database__Provider"] = "oracle",
            ["ORCH_Node__Roles__0"] = "gatewya",
        });
        Assert.Equal(2, exitCode);
        Assert.Contains("Database:Provider 'oracle' is unknown", stderr);
        Assert.Contains("unknown role 'gatewya'", stderr);
    }

    [Fact]
    public async Task A_device_journal_of_another_schema_exits_2_naming_the_columns_and_the_database_stays_unchanged()
    {
        var dir = Path.Combine(Path.GetTempPath(), "orch-journal-schema-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var file = Path.Combine(dir, "devices.db");
            // A journal table as another plugin version might have left it: one column more, writer_uuid missing.
            await SqliteExec(file, """
                CREATE TABLE journal (ordering INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, created INTEGER NOT NULL, deleted Bit NOT NULL,
                  persistence_id NVarChar(255) NOT NULL, sequence_number INTEGER NOT NULL, message VarBinary NOT NULL,
                  manifest NVarChar(500) NULL, identifier INTEGER NULL, event_manifest NVarChar(500) NULL);
                INSERT INTO journal (created, deleted, persistence_id, sequence_number, message) VALUES (1, 0, 'device-a', 1, x'01');
                """);
            var before = await SqliteSchema(file);

            var (exitCode, stderr) = await RunNode(new()
            {
                ["ORCH_Node__DataDirectory"] = dir,
                ["ORCH_Node__StoreRoot"] = Path.Combine(dir, "store"),
                ["ORCH_Urls"] = "http://127.0.0.1:0",
                ["ORCH_Node__Port"] = "0",
            });

            Assert.True(exitCode == 2, $"exit code {exitCode}, stderr: {stderr}");
            Assert.Contains($"SQLite file {file}", stderr);
            Assert.Contains("table 'journal' has column(s) event_manifest this version does not write", stderr);
            Assert.Contains("table 'journal' lacks column(s) writer_uuid", stderr);
            Assert.Contains("Fix:", stderr);
            Assert.Equal(before, await SqliteSchema(file));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int ExitCode, string Stderr)> RunNode(Dictionary<string, string> environment)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "orchestrator.dll");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet", [dll])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var (key, value) in environment) psi.Environment[key] = value;
        using var process = System.Diagnostics.Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await stdout;
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(120)).Token);
        return (process.ExitCode, stderr);
    }

    private static async Task SqliteExec(string file, string sql)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file};Pooling=false");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    // Every table and index with its SQL, plus the journal's rows: what the node must not have touched.
    private static async Task<string> SqliteSchema(string file)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file};Mode=ReadOnly;Pooling=false");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT group_concat(type || ' ' || name || ': ' || coalesce(sql, ''), char(10)) FROM (SELECT * FROM sqlite_master ORDER BY name); " +
                          "SELECT group_concat(persistence_id || '/' || sequence_number) FROM journal";
        await using var r = await cmd.ExecuteReaderAsync();
        var parts = new List<string>();
        do
        {
            while (await r.ReadAsync()) parts.Add(r.IsDBNull(0) ? "" : r.GetString(0));
        } while (await r.NextResultAsync());
        return string.Join("\n--\n", parts);
    }
}

/// <summary>Stopping the host runs CoordinatedShutdown: the node leaves the cluster and the actor system terminates.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task Host_stop_runs_coordinated_shutdown()
    {
        var node = await Support.TestNode.StartAsync();
        var system = (Akka.Actor.ActorSystem)node.Services.GetService(typeof(Akka.Actor.ActorSystem))!;
        var cluster = Akka.Cluster.Cluster.Get(system);
        Assert.Equal(Akka.Cluster.MemberStatus.Up, cluster.SelfMember.Status);
        await node.DisposeAsync();
        Assert.True(system.WhenTerminated.IsCompleted, "actor system still running after the host stopped");
        Assert.NotNull(Akka.Actor.CoordinatedShutdown.Get(system).ShutdownReason);
        Assert.True(cluster.IsTerminated);
    }
}
