using System.Diagnostics;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>
/// Issue 16 items 2-5 with real orch-agent processes against a real node: throttling paces and never fails, devices
/// retry until success (the server honouring the backoff it announced), failures show in every view, byte counts are
/// honest across sessions and restarts, a killed download resumes with Range, and mirrors can come first.
/// </summary>
[Collection(PacingCollection.Name)]
public sealed class PacingTests(ITestOutputHelper output)
{
    /// <summary>The bytesDownloaded of the device's one completion report, as the proxy passed it to the node.</summary>
    private static long ReportedBytes(GatewayProxy proxy) => proxy.Completions.Single()["bytesDownloaded"]!.GetValue<long>();

    private static TestDevice Device(NodeUnderTest node, TestStore store, string id, string secret, string? gateway = null,
        IReadOnlyList<string>? mirrors = null, int maxSessionAttempts = 0, int parallelism = 2, int partialCheckpointMilliseconds = 1000) =>
        new(gateway ?? node.BaseUrl, mirrors: mirrors, credential: secret, deviceId: id,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with
            {
                MaxSessionAttempts = maxSessionAttempts, Parallelism = parallelism, BackoffCapMilliseconds = 500,
                PartialCheckpointMilliseconds = partialCheckpointMilliseconds,
            });

    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit = 0, int timeoutSeconds = 90)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(timeoutSeconds));
        output.WriteLine($"--- {d.Config.DeviceId} exit {r.ExitCode}\n{r.Output}{r.Error}");
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task A_throttled_fleet_installs_with_zero_failure_reports_and_the_rollout_completes()
    {
        // Three devices of ~1.1 MB each through a node whose global egress is 300 kB/s: far below their demand, so the
        // gateway answers 429 over and over while every device runs four requests at once.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Throttle:DeviceBytesPerSecond"] = "1000000",
            ["Throttle:DeviceBurstBytes"] = "300000",
            ["Throttle:GlobalBytesPerSecond"] = "300000",
            ["Throttle:GlobalBurstBytes"] = "300000",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        string[] ids = ["thr-1", "thr-2", "thr-3"];
        var devices = new List<TestDevice>();
        foreach (var id in ids) devices.Add(Device(node, store, id, await node.ProvisionAsync(id), parallelism: 4));
        try
        {
            // Instruments are process-wide: compare before and after, not absolute values.
            var throttledBefore = await node.MetricAsync("orch_gateway_throttled_total");
            var failureReportsBefore = await node.MetricAsync("orch_gateway_reports_total", "kind=\"failure\"");
            await node.CreateRolloutAsync("thr", "1.0", ids);
            await node.UntilRolloutAsync("thr", v => v.Wave("inProgress") == 3);

            await Task.WhenAll(devices.Select(d => Run(d)));

            foreach (var d in devices) Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
            var throttled = await node.MetricAsync("orch_gateway_throttled_total") - throttledBefore;
            output.WriteLine($"429 answers: {throttled}");
            Assert.True(throttled > 0, "the gateway never answered 429: the fleet was not throttled and the test exercised nothing");
            foreach (var id in ids)
            {
                var journal = await node.JournalAsync(id);
                Assert.DoesNotContain("AttemptFailed", journal);
                Assert.Contains("WorkCompleted", journal);
            }
            Assert.Equal(failureReportsBefore, await node.MetricAsync("orch_gateway_reports_total", "kind=\"failure\""));
            var done = await node.UntilRolloutAsync("thr", v => v["status"]!.GetValue<string>() == "Completed");
            Assert.Equal((3, 0, 0), (done.Wave("succeeded"), done.Wave("failed"), done.Wave("failing")));
            Assert.Empty(done["failures"]!.AsArray());

            // Every view agrees: the registry's device list, each device's own state, the dashboard.
            var list = await UntilAsync(() => node.GetJsonAsync("admin/v1/devices?versionId=" + v1.VersionId),
                l => l["total"]!.GetValue<int>() == 3);
            Assert.Equal(3, list["total"]!.GetValue<int>());
            var failedList = await node.GetJsonAsync("admin/v1/devices?status=Failed");
            Assert.Equal(0, failedList["total"]!.GetValue<int>());
            foreach (var id in ids)
                Assert.Equal(v1.VersionId, (await node.GetJsonAsync($"admin/v1/devices/{id}"))["installedVersionId"]!.GetValue<long>());
            var dashboard = await node.GetJsonAsync("admin/v1/dashboard");
            output.WriteLine(dashboard.ToJsonString());
            var byStatus = dashboard["fleet"]!["byStatus"]!;
            Assert.Equal(0, byStatus["Failed"]?.GetValue<int>() ?? 0);
            Assert.Equal(3, (byStatus["Completed"]?.GetValue<int>() ?? 0) + (byStatus["Idle"]?.GetValue<int>() ?? 0));
            Assert.Empty(dashboard["fleet"]!["recentFailures"]!.AsArray());
        }
        finally
        {
            foreach (var d in devices) d.Dispose();
        }
    }

    [Fact]
    public async Task A_device_whose_mirror_and_gateway_store_are_down_keeps_retrying_and_installs_when_they_return()
    {
        await using var mirror = await StoreMirror.StartAsync();
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:RetryBase"] = "00:00:00.200",
            ["Devices:RetryCap"] = "00:00:01",
            ["Gateway:Mirrors:0"] = mirror.BaseUrl,
            ["Gateway:MirrorsFirst"] = "true",
            ["Gateway:FleetGaugeRefreshSeconds"] = "1",
        });
        mirror.Root = node.StoreRoot;
        await using var proxy = await GatewayProxy.StartAsync(node.BaseUrl);
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var d = Device(node, store, "out-1", await node.ProvisionAsync("out-1"), gateway: proxy.BaseUrl, maxSessionAttempts: 2);
        await node.CreateRolloutAsync("out", "1.0", ["out-1"],
            new Dictionary<string, object> { ["errorThreshold"] = 0.5, ["failingAfterAttempts"] = 2 });
        await node.UntilRolloutAsync("out", v => v.Wave("inProgress") == 1);

        // The mirror serves the manifest, its signature and the pack index, then goes down with the gateway's store.
        mirror.ServeOnly = 3;
        proxy.StoreDown = true;
        var first = await Run(d, expectedExit: 1); // two failed sessions for this start, then the agent gives this start up
        Assert.Contains("HTTP 503", first.Output);

        // Failing, not failed: the rollout keeps the device (no cap), counts it as failing, and pauses on it.
        var paused = await node.UntilRolloutAsync("out", v => v["status"]!.GetValue<string>() == "Paused");
        Assert.Contains("failing", paused["pauseReason"]!.GetValue<string>());
        Assert.Equal((1, 1, 0), (paused.Wave("inProgress"), paused.Wave("failing"), paused.Wave("failed")));
        Assert.True(paused["failures"]!.AsArray().Single()!["failing"]!.GetValue<bool>());
        var shown = await node.GetJsonAsync("admin/v1/devices/out-1");
        Assert.Equal("Failed", shown["status"]!.GetValue<string>());
        Assert.Contains("HTTP 503", shown["lastFailure"]!["reason"]!.GetValue<string>());
        var journal = await node.JournalAsync("out-1");
        Assert.Equal(2, journal.Count(t => t == "AttemptFailed"));
        Assert.DoesNotContain("AssignmentCancelled", journal);
        // The same counts in the registry's device list, the dashboard and the Prometheus gauges.
        var failedList = await UntilAsync(() => node.GetJsonAsync("admin/v1/devices?status=Failed"), l => l["total"]!.GetValue<int>() == 1);
        Assert.Equal("out-1", failedList["devices"]![0]!["deviceId"]!.GetValue<string>());
        var dashboard = await node.GetJsonAsync("admin/v1/dashboard");
        Assert.Equal(1, dashboard["fleet"]!["byStatus"]!["Failed"]!.GetValue<int>());
        Assert.Contains("out-1", dashboard["fleet"]!["recentFailures"]!.ToJsonString());
        await node.UntilMetricAsync(1, "orch_devices", "status=\"Failed\"");
        await node.UntilMetricAsync(1, "orch_rollout_devices", "rollout=\"out\"", "state=\"failing\"");
        await node.UntilMetricAsync(0, "orch_rollout_devices", "rollout=\"out\"", "state=\"failed\"");
        await node.UntilMetricAsync(1, "orch_rollout_current_wave", "rollout=\"out\"", "status=\"Paused\"");

        // Both come back; the device (retrying until success this time) installs while the rollout is paused.
        mirror.ServeOnly = null;
        proxy.StoreDown = false;
        File.WriteAllText(d.Config.SourcePath!, (d.Config with { Download = d.Config.Download with { MaxSessionAttempts = 0 } }).ToJson());
        await Run(d);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Contains("WorkCompleted", await node.JournalAsync("out-1"));
        await node.UntilRolloutAsync("out", v => v.Wave("succeeded") == 1);
        await node.SendAsync(HttpMethod.Post, "admin/v1/rollouts/out/resume", new { @operator = "e2e" });
        var done = await node.UntilRolloutAsync("out", v => v["status"]!.GetValue<string>() == "Completed");
        Assert.Equal((1, 0, 0), (done.Wave("succeeded"), done.Wave("failed"), done.Wave("failing")));
        await node.UntilMetricAsync(0, "orch_devices", "status=\"Failed\"");
        await node.UntilMetricAsync(0, "orch_devices_stale");

        // bytesDownloaded covers both agent starts and every session: exactly what the mirror and the gateway served.
        var reported = ReportedBytes(proxy);
        var served = mirror.BodyBytes + proxy.StoreBodyBytes;
        output.WriteLine($"reported {reported}, mirror {mirror.BodyBytes}, gateway store {proxy.StoreBodyBytes}");
        Assert.Equal(served, reported);
    }

    [Fact]
    public async Task Mirrors_first_from_the_node_costs_a_down_gateway_store_no_request()
    {
        await using var mirror = await StoreMirror.StartAsync();
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Mirrors:0"] = mirror.BaseUrl,
            ["Gateway:MirrorsFirst"] = "true",
        });
        mirror.Root = node.StoreRoot;
        await using var proxy = await GatewayProxy.StartAsync(node.BaseUrl);
        proxy.StoreDown = true;
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var d = Device(node, store, "mf-1", await node.ProvisionAsync("mf-1"), gateway: proxy.BaseUrl);
        await node.AssignAsync("mf-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        await Run(d);

        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(0, proxy.StoreRequests);
        Assert.True(mirror.Served > 2, $"the mirror served only {mirror.Served} requests");
        Assert.DoesNotContain("AttemptFailed", await node.JournalAsync("mf-1"));
        Assert.Equal(mirror.BodyBytes, ReportedBytes(proxy));
    }

    [Fact]
    public async Task A_kill_mid_chunk_keeps_the_received_bytes_and_the_restart_fetches_only_the_rest()
    {
        // A slow grant (150 kB/s over two streams) so chunks are caught half received.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Throttle:DeviceBytesPerSecond"] = "150000",
            ["Throttle:DeviceBurstBytes"] = "300000",
        });
        await using var proxy = await GatewayProxy.StartAsync(node.BaseUrl);
        using var store = new TestStore(node.StoreRoot);
        // Chunk objects (part files are theirs; the pack path keeps placed chunks: AgentPackTests).
        var v1 = store.Publish("1.0", Releases.V1(), packs: false);
        // Received bytes are kept in part files every 100 ms, so a chunk part-way received has some on disk.
        using var d = Device(node, store, "kill-1", await node.ProvisionAsync("kill-1"), gateway: proxy.BaseUrl, partialCheckpointMilliseconds: 100);
        await node.AssignAsync("kill-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        var partialDir = d.Layout.PartialChunks;
        var manifest = store.Manifest(v1);
        var content = Releases.V1();
        var psi = AgentProcess.StartInfo(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        Dictionary<string, long> partials = [];
        using (var p = Process.Start(psi)!)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            // Kill (SIGKILL) as soon as a chunk's received bytes were kept in its part file and at least one other chunk is
            // written into the build.
            while (!p.HasExited && DateTime.UtcNow < deadline)
            {
                var growing = Directory.Exists(partialDir) && Directory.EnumerateFiles(partialDir, "*.part").Any(f => LengthIfPresent(f) > 0);
                if (growing && Releases.BuiltChunks(d, manifest, content).Count > 0) break;
                await Task.Delay(10);
            }
            Assert.False(p.HasExited, "the agent finished before it could be killed mid-chunk");
            p.Kill();
            await p.WaitForExitAsync();
            output.WriteLine(await stdout);
        }
        foreach (var f in Directory.EnumerateFiles(partialDir, "*.part"))
            partials[Path.GetFileNameWithoutExtension(f)] = new FileInfo(f).Length;
        output.WriteLine("after the kill: " + string.Join(", ", partials.Select(kv => $"{kv.Key[..8]}={kv.Value}")));
        Assert.Contains(partials.Values, length => length > 0);

        var sizes = manifest.DistinctChunks().ToDictionary(id => id.Hex,
            id => TestStore.StoredLength(node.StoreRoot, id));
        var cachedIds = Releases.BuiltChunks(d, manifest, content);
        var expected = sizes.Where(kv => !cachedIds.Contains(kv.Key)).Sum(kv => kv.Value - partials.GetValueOrDefault(kv.Key));
        var chunkBytesBefore = proxy.ChunkBodyBytes;
        var storeBytesBefore = proxy.StoreBodyBytes;

        await Run(d);

        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        var fetched = proxy.ChunkBodyBytes - chunkBytesBefore;
        output.WriteLine($"restart fetched {fetched} chunk bytes; {expected} were missing");
        Assert.Equal(expected, fetched);
        var reported = ReportedBytes(proxy);
        // The count survives the kill: at least what the first run provably received (its built chunks and partial bytes,
        // less what arrived after the count's last write) plus everything of the restart; at most what the proxy sent.
        var keptByFirstRun = sizes.Where(kv => cachedIds.Contains(kv.Key)).Sum(kv => kv.Value) + partials.Values.Sum();
        output.WriteLine($"reported {reported}; first run kept {keptByFirstRun}; proxy sent {storeBytesBefore} then {proxy.StoreBodyBytes - storeBytesBefore}");
        Assert.InRange(reported, proxy.StoreBodyBytes - storeBytesBefore + keptByFirstRun - InstallByteCounter.PersistEveryBytes, proxy.StoreBodyBytes);
    }

    /// <summary>A running agent renames a part file into the cache at any moment; a file gone between listing and stat is not growing.</summary>
    private static long LengthIfPresent(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (FileNotFoundException) { return 0; }
    }

    private static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> condition, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        T value;
        do
        {
            value = await read();
            if (condition(value)) return value;
            await Task.Delay(200);
        } while (DateTime.UtcNow < deadline);
        return value;
    }
}

/// <summary>
/// Pacing tests read process-wide Prometheus instruments (the node's meters are static, one node per process in
/// production) and time-compressed throttles: they run alone, never beside another test class's node.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PacingCollection
{
    public const string Name = "pacing (no parallel nodes)";
}
