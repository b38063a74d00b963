using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Tests.Support;

namespace Orchestrator.Cli.Tests;

/// <summary>Every server-backed command against a running node (see <see cref="LiveNode"/> for the seeded fleet).</summary>
[Collection(LiveNodeCollection.Name)]
public sealed class ServerCommandTests(LiveNode node)
{
    private static IEnumerable<string> Strings(JsonElement array, string property) =>
        array.EnumerateArray().Select(e => e.GetProperty(property).GetString()!);

    [Fact]
    public async Task Cluster_show_lists_this_node_up_and_leading()
    {
        var run = await node.Orch("cluster", "show", "--json");
        Assert.Equal(0, run.ExitCode);
        var member = Assert.Single(run.Json.GetProperty("members").EnumerateArray());
        Assert.Equal("Up", member.GetProperty("status").GetString());
        Assert.True(member.GetProperty("isLeader").GetBoolean());
        Assert.True(member.GetProperty("isSelf").GetBoolean());
        Assert.Contains("devices", member.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        var text = await node.Orch("cluster", "show");
        Assert.Contains("Up", text.Out);
        Assert.Contains("1 member(s), 0 unreachable", text.Out);
    }

    [Fact]
    public async Task Cluster_leave_and_down_refuse_bad_and_unknown_addresses_without_change()
    {
        var bad = await node.Orch("cluster", "down", "not an address");
        Assert.Equal(ExitCodes.InvalidInput, bad.ExitCode);
        Assert.Contains("orch cluster show", bad.Error);
        var unknown = await node.Orch("cluster", "leave", "akka.tcp://orchestrator@127.0.0.1:1", "--json");
        Assert.Equal(ExitCodes.NotFound, unknown.ExitCode);
        Assert.Equal("member_not_found", unknown.Json.GetProperty("error").GetString());
        var readOnly = await node.Orch("cluster", "down", "akka.tcp://orchestrator@127.0.0.1:1", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, readOnly.ExitCode);
        Assert.Contains("'operate' scope", readOnly.Error);
        Assert.Equal("Up", (await node.Orch("cluster", "show", "--json")).Json.GetProperty("members")[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task Sharding_regions_stats_and_locate_agree_on_where_devices_live()
    {
        var regions = await node.Orch("sharding", "regions", "--json");
        Assert.Equal(0, regions.ExitCode);
        var device = regions.Json.GetProperty("regions").EnumerateArray().Single(r => r.GetProperty("typeName").GetString() == "device");
        Assert.True(device.GetProperty("hostedHere").GetBoolean());
        Assert.True(device.GetProperty("shards").EnumerateArray().Sum(s => s.GetProperty("entityCount").GetInt32()) >= 3);

        var stats = await node.Orch("sharding", "stats", "--json");
        Assert.Equal(0, stats.ExitCode);
        var deviceStats = stats.Json.GetProperty("types").EnumerateArray().Single(t => t.GetProperty("typeName").GetString() == "device");
        var region = Assert.Single(deviceStats.GetProperty("regions").EnumerateArray());
        Assert.True(region.GetProperty("entities").GetInt32() >= 3);

        var locate = await node.Orch("sharding", "locate", "fleet-a", "--json");
        Assert.Equal(0, locate.ExitCode);
        Assert.Equal(region.GetProperty("address").GetString(), locate.Json.GetProperty("address").GetString());
        Assert.True(locate.Json.GetProperty("entityAlive").GetBoolean());
        var shard = locate.Json.GetProperty("shardId").GetString();
        Assert.Contains(shard, device.GetProperty("shards").EnumerateArray().Select(s => s.GetProperty("shardId").GetString()));

        var text = await node.Orch("sharding", "locate", "fleet-a");
        Assert.Contains($"shard  {shard}", text.Out.Replace("    ", "  "));
        Assert.Equal(ExitCodes.Usage, (await node.Orch("sharding", "locate", "bad id!")).ExitCode);
    }

    [Fact]
    public async Task Device_list_filters_by_status_tag_and_version()
    {
        var all = await node.Orch("device", "list", "--json");
        Assert.Equal(0, all.ExitCode);
        Assert.Equal(3, all.Json.GetProperty("total").GetInt32());

        var failed = await node.Orch("device", "list", "--status", "failed", "--json");
        Assert.Equal(["fleet-b"], Strings(failed.Json.GetProperty("devices"), "deviceId"));
        Assert.Equal("Failed", failed.Json.GetProperty("devices")[0].GetProperty("status").GetString());

        var canary = await node.Orch("device", "list", "--tag", "canary", "--json");
        Assert.Equal(["fleet-c"], Strings(canary.Json.GetProperty("devices"), "deviceId"));

        var v2 = await node.Orch("device", "list", "--version-id", node.V2.VersionId.ToString(), "--json");
        Assert.Equal(["fleet-c"], Strings(v2.Json.GetProperty("devices"), "deviceId"));

        var limited = await node.Orch("device", "list", "--limit", "1", "--json");
        Assert.Equal(1, limited.Json.GetProperty("devices").GetArrayLength());
        Assert.Equal(3, limited.Json.GetProperty("total").GetInt32());

        var text = await node.Orch("device", "list", "--tag", "eu");
        Assert.Contains("fleet-a", text.Out);
        Assert.Contains("Failed", text.Out);
        Assert.Contains("3 of 3 matching", text.Out);

        var drawn = await node.Cli.OrchOnTerminal("device", "list", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.Equal(0, drawn.ExitCode);
        Assert.Contains("╭", drawn.Out); // Spectre table with rounded borders on a terminal
        Assert.Contains("fleet-", drawn.Out); // 80 columns by default off a real console: cells may wrap

        var bogus = await node.Orch("device", "list", "--status", "Exploded");
        Assert.Equal(ExitCodes.Usage, bogus.ExitCode);
        Assert.Contains("UpgradeAssigned", bogus.Error);
        Assert.Equal(ExitCodes.Usage, (await node.Orch("device", "list", "--limit", "0")).ExitCode);
    }

    [Fact]
    public async Task Device_show_gives_state_and_last_failure_and_404_for_unknown()
    {
        var show = await node.Orch("device", "show", "fleet-b", "--json");
        Assert.Equal(0, show.ExitCode);
        Assert.Equal("Failed", show.Json.GetProperty("status").GetString());
        Assert.Equal("disk full", show.Json.GetProperty("lastFailure").GetProperty("reason").GetString());
        Assert.Equal("Install", show.Json.GetProperty("lastFailure").GetProperty("stage").GetString());

        var text = await node.Orch("device", "show", "fleet-b");
        Assert.Contains("Device fleet-b: Failed", text.Out);
        Assert.Contains("Install: disk full", text.Out);

        var missing = await node.Orch("device", "show", "never-seen", "--json");
        Assert.Equal(ExitCodes.NotFound, missing.ExitCode);
        Assert.Equal("device_not_found", missing.Json.GetProperty("error").GetString());
        Assert.Contains("never checked in", missing.Error);
    }

    [Fact]
    public async Task Device_history_lists_the_journal_in_order()
    {
        var run = await node.Orch("device", "history", "fleet-b", "--json");
        Assert.Equal(0, run.ExitCode);
        var types = Strings(run.Json.GetProperty("events"), "type").ToList();
        Assert.Equal(["DeviceRegistered", "DeviceCheckedIn", "AttemptFailed"], types);
        var seq = run.Json.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("sequenceNr").GetInt64()).ToList();
        Assert.Equal(seq.Order(), seq);
        Assert.Equal("disk full", run.Json.GetProperty("events")[2].GetProperty("data").GetProperty("failure").GetProperty("reason").GetString());

        var last = await node.Orch("device", "history", "fleet-b", "--last", "1", "--json");
        Assert.Equal(["AttemptFailed"], Strings(last.Json.GetProperty("events"), "type"));

        var text = await node.Orch("device", "history", "fleet-b");
        Assert.Contains("registered for acme (tags eu)", text.Out);
        Assert.Contains("failed while installing: disk full", text.Out);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("device", "history", "never-seen")).ExitCode);
    }

    [Fact]
    public async Task Device_provision_shows_the_secret_once_refuses_duplicates_and_rotates()
    {
        var first = await node.Orch("device", "provision", "prov-1", "--json");
        Assert.Equal(0, first.ExitCode);
        var secret = first.Json.GetProperty("secret").GetString()!;
        Assert.True(secret.Length >= 40);
        Assert.False(first.Json.GetProperty("registered").GetBoolean());

        var again = await node.Orch("device", "provision", "prov-1");
        Assert.Equal(ExitCodes.Conflict, again.ExitCode);
        Assert.Contains("rotate", again.Error);

        var rotated = await node.Orch("device", "provision", "prov-1", "--rotate");
        Assert.Equal(0, rotated.ExitCode);
        Assert.Contains("old secret no longer works", rotated.Out);
        Assert.DoesNotContain(secret, rotated.Out);

        var tagsWithoutProduct = await node.Orch("device", "provision", "prov-2", "--tags", "x");
        Assert.Equal(ExitCodes.Usage, tagsWithoutProduct.ExitCode);
        var readOnly = await node.Orch("device", "provision", "prov-2", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, readOnly.ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("device", "show", "prov-2")).ExitCode);
    }

    [Fact]
    public async Task Release_list_and_show_read_the_nodes_store()
    {
        var list = await node.Orch("release", "list", "--json");
        Assert.Equal(0, list.ExitCode);
        var acme = list.Json.GetProperty("products").EnumerateArray().Single(p => p.GetProperty("product").GetString() == "acme");
        Assert.Equal(["1.0.0", "2.0.0"], Strings(acme.GetProperty("versions"), "version"));
        Assert.Equal("beta", acme.GetProperty("versions")[1].GetProperty("channels")[0].GetString());

        var show = await node.Orch("release", "show", "acme", "2.0.0", "--json");
        Assert.Equal(0, show.ExitCode);
        Assert.Equal(node.V2.VersionId, show.Json.GetProperty("versionId").GetInt64());
        Assert.Equal(2, show.Json.GetProperty("files").GetInt32());
        Assert.True(show.Json.GetProperty("signaturePresent").GetBoolean());
        Assert.Equal(1, show.Json.GetProperty("devicesInstalled").GetInt32());

        var text = await node.Orch("release", "list");
        Assert.Contains("2.0.0", text.Out);
        Assert.Contains("beta", text.Out);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("release", "show", "acme", "9.9.9")).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("release", "list", "--product", "nothing")).ExitCode);
        Assert.Equal(ExitCodes.InvalidInput, (await node.Orch("release", "list", "--product", "Bad Name")).ExitCode);
    }

    [Fact]
    public async Task Chunks_stats_verify_and_gc()
    {
        var stats = await node.Orch("chunks", "stats", "--json");
        Assert.Equal(0, stats.ExitCode);
        Assert.True(stats.Json.GetProperty("chunks").GetInt64() > 0);
        Assert.Equal(0, stats.Json.GetProperty("unreferencedChunks").GetInt64());
        Assert.Equal(2, stats.Json.GetProperty("versions").GetInt32());

        Assert.Equal(0, (await node.Orch("chunks", "verify")).ExitCode);
        var chunk = Directory.EnumerateFiles(Path.Combine(node.StoreRoot, "chunks"), "*", SearchOption.AllDirectories).First();
        var original = File.ReadAllBytes(chunk);
        try
        {
            var damaged = original.ToArray();
            damaged[^1] ^= 1;
            File.WriteAllBytes(chunk, damaged);
            var bad = await node.Orch("chunks", "verify", "--json");
            Assert.Equal(ExitCodes.IntegrityProblem, bad.ExitCode);
            Assert.False(bad.Json.GetProperty("ok").GetBoolean());
            Assert.Contains(Path.GetFileName(chunk), bad.Json.GetProperty("problems")[0].GetString());
        }
        finally { File.WriteAllBytes(chunk, original); }

        var dry = await node.Orch("chunks", "gc", "--json");
        Assert.Equal(0, dry.ExitCode);
        Assert.True(dry.Json.GetProperty("dryRun").GetBoolean());
        Assert.Equal(0, dry.Json.GetProperty("deleted").GetInt64());
        var applied = await node.Orch("chunks", "gc", "--apply", "--grace-minutes", "1", "--json");
        Assert.Equal(0, applied.ExitCode);
        Assert.False(applied.Json.GetProperty("dryRun").GetBoolean());
        Assert.Equal(0, applied.Json.GetProperty("deleted").GetInt64()); // every chunk is referenced by a published manifest
        Assert.Equal(0, (await node.Orch("chunks", "verify")).ExitCode);
        var readOnly = await node.Orch("chunks", "gc", "--apply", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, readOnly.ExitCode);
        Assert.Equal(ExitCodes.Usage, (await node.Orch("chunks", "gc", "--grace-minutes", "0")).ExitCode);
    }

    [Fact]
    public async Task Missing_invalid_and_underprivileged_tokens_are_clear_errors_with_exit_code_6()
    {
        var server = node.BaseAddress.ToString();
        var none = await node.Cli.Orch("device", "list", "--server", server, "--json");
        Assert.Equal(ExitCodes.Unauthorized, none.ExitCode);
        Assert.Contains("--token", none.Error);
        Assert.Contains("ORCH_TOKEN", none.Error);
        Assert.Equal("token_missing", none.Json.GetProperty("error").GetString());

        var wrong = await node.Cli.Orch("device", "list", "--server", server, "--token", "not-a-real-token");
        Assert.Equal(ExitCodes.Unauthorized, wrong.ExitCode);
        Assert.Contains("not recognised", wrong.Error);

        var scope = await node.Orch("device", "provision", "scope-1", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, scope.ExitCode);
        Assert.Contains("'operate' scope", scope.Error);
    }

    [Fact]
    public async Task Server_and_token_come_from_the_environment_and_may_precede_the_palette()
    {
        var cli = new CliHarness();
        try
        {
            cli.Environment["ORCH_SERVER"] = node.BaseAddress.ToString();
            cli.Environment["ORCH_TOKEN"] = LiveNode.ReadToken;
            var env = await cli.Orch("device", "list", "--json");
            Assert.Equal(0, env.ExitCode);
            Assert.Equal(3, env.Json.GetProperty("total").GetInt32());

            cli.Environment.Clear();
            var leading = await cli.Orch("--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken, "--json", "release", "list");
            Assert.Equal(0, leading.ExitCode);
            Assert.Equal("acme", leading.Json.GetProperty("products")[0].GetProperty("product").GetString());
        }
        finally { cli.Dispose(); }
    }

    [Fact]
    public async Task Unreachable_server_and_bad_server_url_exit_with_8_and_2()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        var down = await node.Orch("cluster", "show", "--server", $"http://127.0.0.1:{port}", "--json");
        Assert.Equal(ExitCodes.Unavailable, down.ExitCode);
        Assert.Contains("Cannot reach the node", down.Error);
        Assert.Equal("unreachable", down.Json.GetProperty("error").GetString());

        var bad = await node.Orch("cluster", "show", "--server", "ftp://x");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);
        Assert.Contains("http(s) URL", bad.Error);
    }

    [Fact]
    public async Task Every_server_command_documents_json_server_and_token()
    {
        foreach (var spec in OrchCli.CreateRegistry().Commands.Where(c => c.Switches.Any(s => s.Name == "server")))
        {
            var help = await node.Cli.Orch(spec.Palette, spec.Name, "--help");
            Assert.Equal(0, help.ExitCode);
            foreach (var sw in new[] { "--json", "--server", "--token" }) Assert.Contains(sw, help.Out);
        }
        var commands = OrchCli.CreateRegistry().Commands.Select(c => $"{c.Palette} {c.Name}").ToHashSet();
        foreach (var expected in new[] { "cluster show", "cluster leave", "cluster down", "sharding regions", "sharding stats", "sharding locate",
                     "device list", "device show", "device history", "device provision", "device register-batch", "release publish", "release list", "release show",
                     "chunks stats", "chunks verify", "chunks gc" })
            Assert.Contains(expected, commands);
    }
}
