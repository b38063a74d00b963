using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Tests.Support;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Cli.Tests;

/// <summary>
/// <c>orch rollout ...</c> against a running node with the real rollout coordinator and device actors. Uses its own
/// node (not the shared collection), because rollouts change devices that other tests count.
/// </summary>
public sealed class RolloutCommandTests(LiveNode node) : IClassFixture<LiveNode>
{
    private async Task<long> PublishV3Async()
    {
        var existing = await node.Orch("release", "list", "--json");
        var v3 = existing.Json.GetProperty("products")[0].GetProperty("versions").EnumerateArray().FirstOrDefault(v => v.GetProperty("version").GetString() == "3.0.0");
        if (v3.ValueKind == JsonValueKind.Object) return v3.GetProperty("versionId").GetInt64();
        var tree = Path.Combine(node.Root, "tree");
        await File.WriteAllTextAsync(Path.Combine(tree, "bin/app"), "app v3");
        var run = await node.Cli.Orch("publish", "--store", node.StoreRoot, "--keys", node.Cli.Keys, "--product", "acme", "--version", "3.0.0", "--json", tree);
        Assert.Equal(0, run.ExitCode);
        return run.Json.GetProperty("versionId").GetInt64();
    }

    /// <summary>Checks in until the device is told to upgrade (the rollout assigns through the registry, which lags the journal).</summary>
    private async Task<CheckInResponse> CheckInUntilUpgradeAsync(string deviceId, CheckInRequest request)
    {
        for (var i = 0; i < 150; i++)
        {
            var answer = await node.CheckInAsync(deviceId, request);
            if (answer.Action == UpdateAction.Upgrade) return answer;
            await Task.Delay(100);
        }
        throw new TimeoutException($"{deviceId} was not told to upgrade within 15 s.");
    }

    [Fact]
    public async Task Create_watch_until_completed_list_show_and_rollback()
    {
        var created = await node.Orch("rollout", "create", "--id", "ro-one", "--product", "acme", "--version", "2.0.0", "--devices", "fleet-a",
            "--waves", "100%", "--json");
        Assert.True(created.ExitCode == 0, created.Error);
        Assert.Equal("ro-one", created.Json.GetProperty("spec").GetProperty("rolloutId").GetString());
        Assert.Equal(1, created.Json.GetProperty("waves").GetArrayLength());

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var watch = node.Cli.Start(stop.Token, "rollout", "watch", "ro-one", "--interval", "1", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);

        var inventory = node.V1Files.Select(f => new InventoryEntry(f.Key, f.Value)).ToList();
        var upgrade = await CheckInUntilUpgradeAsync("fleet-a", new CheckInRequest("acme", node.V1.VersionId, node.V1.Digest, inventory, "1.0"));
        Assert.Equal(node.V2.VersionId, upgrade.TargetVersionId);
        using (var done = await node.DevicePostAsync("fleet-a", "completion", new CompletionReport(node.V2.VersionId, node.V2.Digest)))
            Assert.True(done.IsSuccessStatusCode, await done.Content.ReadAsStringAsync());

        var code = await watch.Exit.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(code == ExitCodes.Success, watch.OutText + watch.Error);
        var lines = watch.OutText.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length >= 2, "watch streamed only: " + watch.OutText);   // at least the running and the completed state
        Assert.Contains("ro-one Completed wave 1/1 [1: 1 ok, 0 running, 0 failed, 0 pending of 1]", lines[^1]);

        var list = await node.Orch("rollout", "list", "--json");
        var row = list.Json.GetProperty("rollouts").EnumerateArray().Single(r => r.GetProperty("rolloutId").GetString() == "ro-one");
        Assert.Equal("Completed", row.GetProperty("status").GetString());
        Assert.Equal(1, row.GetProperty("succeeded").GetInt32());
        var active = await node.Orch("rollout", "list", "--active", "--json");
        Assert.DoesNotContain("ro-one", active.Out);

        var show = await node.Orch("rollout", "show", "ro-one");
        Assert.Equal(0, show.ExitCode);
        Assert.Contains("Rollout ro-one: acme 2.0.0", show.Out);
        Assert.Contains(new string('#', 20), show.Out);

        // On a terminal the watch draws progress bars per wave and ends with the final line.
        var drawn = await node.Cli.OrchOnTerminal("rollout", "watch", "ro-one", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
        Assert.True(drawn.ExitCode == 0, drawn.Error);
        Assert.True(drawn.Out.Contains("ro-one wave 1: 1 ok 0 running 0 failed - Completed"), drawn.Out);
        Assert.Contains("100%", drawn.Out);

        var rollback = await node.Orch("rollout", "rollback", "ro-one", "--reason", "bad build", "--json");
        Assert.True(rollback.ExitCode == 0, rollback.Error);
        Assert.Equal("RolledBack", rollback.Json.GetProperty("status").GetString());
        // A watch of a rolled-back rollout ends at once with exit code 10.
        Assert.Equal(ExitCodes.WatchedFailed, (await node.Orch("rollout", "watch", "ro-one")).ExitCode);
    }

    [Fact]
    public async Task Pause_resume_abort_and_a_watch_stopped_by_ctrl_c()
    {
        await PublishV3Async();
        var created = await node.Orch("rollout", "create", "--id", "ro-two", "--product", "acme", "--version", "3.0.0", "--tags", "canary",
            "--waves", "1,100%", "--error-threshold", "0.5", "--json");
        Assert.True(created.ExitCode == 0, created.Error);

        var paused = await node.Orch("rollout", "pause", "ro-two", "--reason", "checking dashboards", "--json");
        Assert.Equal(0, paused.ExitCode);
        Assert.Equal("Paused", paused.Json.GetProperty("status").GetString());
        Assert.StartsWith("checking dashboards", paused.Json.GetProperty("pauseReason").GetString());
        var again = await node.Orch("rollout", "pause", "ro-two", "--json");
        Assert.Equal(ExitCodes.Conflict, again.ExitCode);

        using (var ctrlC = new CancellationTokenSource())
        {
            var watch = node.Cli.Start(ctrlC.Token, "rollout", "watch", "ro-two", "--interval", "1", "--server", node.BaseAddress.ToString(), "--token", LiveNode.ReadToken);
            for (var i = 0; i < 100 && !watch.OutText.Contains("Paused"); i++) await Task.Delay(50);
            Assert.Contains("ro-two Paused", watch.OutText);
            ctrlC.Cancel();
            Assert.Equal(ExitCodes.Success, await watch.Exit.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Contains("Stopped watching ro-two; the rollout itself continues (Paused)", watch.OutText);
        }

        var resumed = await node.Orch("rollout", "resume", "ro-two", "--json");
        Assert.Equal(0, resumed.ExitCode);
        Assert.NotEqual("Paused", resumed.Json.GetProperty("status").GetString());
        var aborted = await node.Orch("rollout", "abort", "ro-two", "--reason", "wrong build");
        Assert.Equal(0, aborted.ExitCode);
        Assert.Contains("now Aborted", aborted.Out);
        var json = await node.Orch("rollout", "watch", "ro-two", "--json");
        Assert.Equal(ExitCodes.WatchedFailed, json.ExitCode);
        var streamed = JsonDocument.Parse(json.Out.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("Aborted", streamed.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Bad_rollout_requests_are_refused_with_clear_errors_and_nothing_created()
    {
        var before = (await node.Orch("rollout", "list", "--json")).Json.GetProperty("rollouts").GetArrayLength();
        var noSelector = await node.Orch("rollout", "create", "--product", "acme", "--version", "2.0.0");
        Assert.Equal(ExitCodes.Usage, noSelector.ExitCode);
        Assert.Contains("--tags, --attributes, --installed, --devices or --groups", noSelector.Error);
        var badWaves = await node.Orch("rollout", "create", "--product", "acme", "--version", "2.0.0", "--tags", "eu", "--waves", "5,lots");
        Assert.Equal(ExitCodes.Usage, badWaves.ExitCode);
        Assert.Contains("'lots'", badWaves.Error);
        var badFraction = await node.Orch("rollout", "create", "--product", "acme", "--version", "2.0.0", "--tags", "eu", "--error-threshold", "7");
        Assert.Equal(ExitCodes.Usage, badFraction.ExitCode);
        var missingVersion = await node.Orch("rollout", "create", "--product", "acme", "--version", "9.9.9", "--tags", "eu", "--json");
        Assert.Equal(ExitCodes.InvalidInput, missingVersion.ExitCode);
        Assert.Contains("9.9.9", missingVersion.Error);
        Assert.Equal("invalid_rollout", missingVersion.Json.GetProperty("error").GetString());
        var readOnly = await node.Orch("rollout", "create", "--product", "acme", "--version", "2.0.0", "--tags", "eu", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, readOnly.ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("rollout", "show", "ro-nothing")).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await node.Orch("rollout", "pause", "ro-nothing")).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await node.Orch("rollout", "show", "Bad_Id")).ExitCode);
        Assert.Equal(before, (await node.Orch("rollout", "list", "--json")).Json.GetProperty("rollouts").GetArrayLength());
    }
}

/// <summary><c>orch rollout create</c> refuses a rollout that would wait forever on devices that do not exist.</summary>
public sealed class RolloutToNobodyTests(LiveNode node) : IClassFixture<LiveNode>
{
    [Fact]
    public async Task A_selector_matching_no_device_or_naming_an_unregistered_one_is_refused_and_creates_nothing()
    {
        var noTag = await node.Orch("rollout", "create", "--id", "ro-nobody", "--product", "acme", "--version", "2.0.0", "--tags", "nosuchtag");
        Assert.Equal(ExitCodes.InvalidInput, noTag.ExitCode);
        Assert.Contains("selector matches no device of product 'acme'", noTag.Error);

        var phantom = await node.Orch("rollout", "create", "--id", "ro-phantom", "--product", "acme", "--version", "2.0.0", "--devices", "nosuchdev");
        Assert.Equal(ExitCodes.InvalidInput, phantom.ExitCode);
        Assert.Contains("1 named device(s) are neither provisioned nor registered: nosuchdev", phantom.Error);

        // Nothing was created, and no phantom device appeared.
        var list = await node.Orch("rollout", "list", "--json");
        Assert.DoesNotContain("ro-nobody", list.Out);
        Assert.DoesNotContain("ro-phantom", list.Out);
        var show = await node.Orch("device", "show", "nosuchdev");
        Assert.Equal(ExitCodes.NotFound, show.ExitCode);
    }

    [Fact]
    public async Task A_dry_run_shows_what_the_rollout_would_select_and_creates_nothing()
    {
        var eu = await node.Orch("rollout", "create", "--id", "ro-dry", "--product", "acme", "--version", "2.0.0", "--tags", "eu", "--waves", "1,100%", "--dry-run");
        Assert.Equal(0, eu.ExitCode);
        Assert.Contains("Would roll acme 2.0.0 (version ID 2) out to 3 device(s) of channel stable; nothing was created.", eu.Out);
        Assert.Contains("waves      1, 2", eu.Out);
        Assert.Contains("on target  1 already run 2.0.0", eu.Out); // fleet-c runs 2.0.0
        Assert.Contains("devices    fleet-a, fleet-b, fleet-c", eu.Out);

        var canary = await node.Orch("rollout", "create", "--product", "acme", "--version", "2.0.0", "--tags", "canary", "--dry-run", "--json");
        Assert.Equal(0, canary.ExitCode);
        Assert.Equal(1, canary.Json.GetProperty("devices").GetInt32());
        Assert.Equal("fleet-c", canary.Json.GetProperty("sample")[0].GetString());

        Assert.DoesNotContain("ro-dry", (await node.Orch("rollout", "list", "--json")).Out);
    }
}
