using System.Diagnostics;
using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The real orch-agent upgrading 1.0 -> 2.0 over a whole-release delta built in a real node's store, every store request
/// passing through a counting proxy (<see cref="HostileGateway.StoreLog"/>) that can also trickle or tamper.
/// </summary>
public sealed class AgentReleaseDeltaTests(ITestOutputHelper output)
{
    /// <summary>
    /// 2.0: every file of 1.0 restamped every 3000 bytes (per-chunk dedup finds nothing), plus a new file that is a
    /// restamped copy of lib/core.so (only the whole-release reference has its source) and 600 kB of new random data.
    /// </summary>
    private static Dictionary<string, byte[]> V2()
    {
        var files = Releases.V1();
        foreach (var path in files.Keys.ToList()) files[path] = Stamp(files[path], 2);
        files["plugins/core-copy.so"] = Stamp(Releases.V1()["lib/core.so"], 3);
        files["share/new.bin"] = Releases.Bytes(77, 600_000);
        return files;
    }

    private static byte[] Stamp(byte[] content, int version)
    {
        var copy = (byte[])content.Clone();
        for (var at = 40; at + 8 < copy.Length; at += 3000) BitConverter.GetBytes(version * 1009L + at).CopyTo(copy, at);
        return copy;
    }

    private sealed record Setup(HostileGatewayRig Rig, PublishResult V2, DeltaManifest Delta) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Rig.DisposeAsync();
    }

    /// <summary>
    /// Node, counting proxy, 1.0 and 2.0 published, the whole-release delta built (schema 4 frames of 128 KiB, or with
    /// <paramref name="oneFrame"/> one frame cut into objects of 64 KiB), 1.0 installed on the rig's device.
    /// </summary>
    private async Task<Setup> StartAsync(string deviceId, DownloadSettings? download = null, bool oneFrame = false)
    {
        var rig = await HostileGatewayRig.StartAsync(deviceId, download ?? TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var v2 = rig.Store.Publish("2.0", V2());
        var delta = new DeltaBuilder(rig.Store.Store, rig.Store.ContentKey, rig.Store.SigningKey)
            { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 128 * 1024, OneFrame = oneFrame, ObjectContent = 64 * 1024 }.Build("acme", "1.0", "2.0").Delta;
        Assert.Equal(oneFrame ? DeltaManifest.OneFrameReleaseSchema : DeltaManifest.ChainedReleaseSchema, delta.SchemaVersion);
        Assert.True(delta.Release!.Frames.Count >= 8, $"{delta.Release.Frames.Count} frames or objects");
        await Run(rig.Device);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        await rig.Node.AssignAsync(deviceId, "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        return new Setup(rig, v2, delta);
    }

    private async Task<AgentProcess.Result> Run(TestDevice d, int exitCode = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(exitCode, r.ExitCode);
        return r;
    }

    private static void AssertTreeIsV2(TestDevice d, PublishResult v2) => Releases.AssertTreeIs(d, v2.InventoryDigest, V2());

    // The gateway serves the stored object with one byte flipped near its end (inside the authenticated payload).
    private static void ServeTampered(HostileGatewayRig rig, ChunkId id)
    {
        var path = StoreLayout.ChunkPath(id);
        var tampered = File.ReadAllBytes(Path.Combine(rig.Store.Root, path));
        tampered[^20] ^= 1;
        rig.Gateway.OnStore = p => p == path ? tampered : null;
    }

    private async Task<JsonNode> PlanAsync(Setup s, string method) => await PlanAsync(s.Rig, method, "1.0", "2.0");

    private async Task<JsonNode> PlanAsync(HostileGatewayRig rig, string method, string from, string to)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "plan", "--store", rig.Store.Root, "--product", "acme",
            "--from", from, "--to", to, "--method", method, "--json");
        return JsonNode.Parse(r.Output)!;
    }

    [Fact]
    public async Task Upgrade_over_the_whole_release_delta_fetches_exactly_what_release_plan_says_for_both_methods()
    {
        await using var s = await StartAsync("dev-rd");
        var rig = s.Rig;
        rig.Gateway.StoreLog.Clear();
        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        var streamed = s.Delta.ReleaseFiles.Count;
        Assert.Contains($"{streamed} file(s) by the whole-release delta", upgrade.Output);
        Assert.Contains($"{streamed} file(s) from delta patches, 0 fell back to chunks", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        Assert.Contains(fetched, f => f.Path == StoreLayout.DeltaManifestPath("acme", "1.0", "2.0"));
        Assert.All(s.Delta.Release!.Frames, f => Assert.Contains(fetched, x => x.Path == StoreLayout.ChunkPath(f.Id)));

        var plan = await PlanAsync(s, "delta");
        Assert.Equal("delta", (string)plan["method"]!);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        Assert.Equal(fetched.Count(f => f.Path.StartsWith("chunks/", StringComparison.Ordinal)), (int)plan["objects"]!);
        Assert.Equal("delta", (string)(await PlanAsync(s, "auto"))["method"]!);

        // A second device, offered no delta (the proxy strips it from the node's answer): the chunk path, planned exactly too.
        using var d2 = new TestDevice(rig.Gateway.BaseUrl, credential: await rig.Node.ProvisionAsync("dev-rc"), deviceId: "dev-rc",
            contentKey: rig.Store.ContentKey.ToBytes(), trustRoot: rig.Store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await rig.Node.AssignAsync("dev-rc", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        await Run(d2);
        await rig.Node.AssignAsync("dev-rc", "acme", s.V2.Version, s.V2.VersionId, s.V2.ManifestPath);
        rig.Gateway.OnCheckIn = async c =>
        {
            var (status, body) = await rig.Gateway.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            if (JsonNode.Parse(body) is JsonObject o && o.Remove("deltaManifestPath")) body = o.ToJsonString();
            return (status, body);
        };
        rig.Gateway.StoreLog.Clear();
        var chunks = await Run(d2);
        AssertTreeIsV2(d2, s.V2);
        Assert.Contains("0 file(s) from delta patches", chunks.Output);
        var chunkFetched = rig.Gateway.StoreLog.ToList();
        // The chunk path reads the new chunks as byte ranges of 2.0's packs, not as chunk objects.
        Assert.Contains(chunkFetched, f => f.Path == StoreLayout.PackIndexPath("acme", "2.0"));
        Assert.Contains(chunkFetched, f => f.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal) && f.Range is not null);
        Assert.DoesNotContain(chunkFetched, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
        var chunkPlan = await PlanAsync(s, "chunks");
        Assert.Equal("chunks", (string)chunkPlan["method"]!);
        Assert.Equal(chunkFetched.Count, (int)chunkPlan["requests"]!);
        Assert.Equal(chunkFetched.Sum(f => f.Bytes), (long)chunkPlan["bytes"]!);
        output.WriteLine($"delta: {fetched.Sum(f => f.Bytes)} bytes in {fetched.Count} requests; chunks: {chunkFetched.Sum(f => f.Bytes)} bytes in {chunkFetched.Count} requests");
        Assert.True(fetched.Sum(f => f.Bytes) * 3 < chunkFetched.Sum(f => f.Bytes));
    }

    [Fact]
    public async Task A_delta_declaring_a_window_over_the_agents_bound_is_not_used_and_the_release_comes_from_chunks()
    {
        await using var s = await StartAsync("dev-rw", TestDevice.FastDownloads with { MaxSessionAttempts = 1, MaxDeltaWindowBytes = 1L << 22 });
        var rig = s.Rig;
        rig.Gateway.StoreLog.Clear();
        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        Assert.Contains($"whole-release delta declares a {1L << s.Delta.Release!.WindowLog}-byte window, over download.maxDeltaWindowBytes 4194304; fetching chunks instead",
            upgrade.Output);
        Assert.Contains("0 file(s) from delta patches", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        Assert.DoesNotContain(fetched, x => s.Delta.Release.Frames.Any(f => x.Path == StoreLayout.ChunkPath(f.Id)));
    }

    [Fact]
    public async Task Executables_upgrade_over_a_schema_3_delta_and_the_agent_undoes_the_branch_transform_across_frames()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-rx", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        // 3.0 inserts code into the x86-64 program of 2.0 (every later call moves) and restamps lib/core.so.
        var v3Files = Releases.V1();
        v3Files["bin/tool"] = ExecutableSamples.X86Program(600_000, 5000);
        v3Files["lib/core.so"] = Stamp(v3Files["lib/core.so"], 3);
        var v3 = await InstallProgramThenPublishAsync(rig, v3Files);
        var delta = new DeltaBuilder(rig.Store.Store, rig.Store.ContentKey, rig.Store.SigningKey)
            { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 128 * 1024, ChainFrames = false }.Build("acme", "2.0", "3.0").Delta;
        Assert.Equal(DeltaManifest.FilteredReleaseSchema, delta.SchemaVersion);
        Assert.Equal(BranchFilterKind.X86, Assert.Single(delta.ReleaseFiles, f => f.Path == "bin/tool").Filter);
        Assert.True(delta.Release!.Frames.Count >= 3, $"{delta.Release.Frames.Count} frames");

        await UpgradeOverReleaseDeltaAsync(rig, v3, v3Files, delta);
    }

    [Fact]
    public async Task A_kill_in_the_middle_of_a_frame_resumes_that_frame_with_a_range_request()
    {
        await using var s = await StartAsync("dev-rk");
        var rig = s.Rig;
        var largest = s.Delta.Release!.Frames.MaxBy(f => f.Stored)!;
        var partial = Path.Combine(rig.Device.Layout.PartialChunks, largest.Id.Hex + ".part");
        rig.Gateway.TrickleChunksBytesPerSecond = 40_000; // the largest frame (~128 KiB of new random data) takes ~3 s
        using (var p = Process.Start(AgentProcess.StartInfo(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"]))!)
        {
            var outTask = p.StandardOutput.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(File.Exists(partial) && new FileInfo(partial).Length > 0) && !p.HasExited && DateTime.UtcNow < deadline)
                await Task.Delay(20);
            Assert.False(p.HasExited, "the agent finished before a part file of the frame was checkpointed");
            p.Kill();
            await p.WaitForExitAsync();
            output.WriteLine($"killed mid-frame with {new FileInfo(partial).Length} of {largest.Stored} bytes kept\n{await outTask}");
        }
        var kept = new FileInfo(partial).Length;
        Assert.InRange(kept, 1, largest.Stored - 1);
        rig.Gateway.TrickleChunksBytesPerSecond = null;
        var framePath = StoreLayout.ChunkPath(largest.Id);
        await rig.Gateway.SettleAsync();
        rig.Gateway.StoreLog.Clear();
        var resumed = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        Assert.Contains("0 fell back to chunks", resumed.Output);
        var frameRequests = rig.Gateway.StoreLog.Where(r => r.Path == framePath).ToList();
        // Fetched once more, from where the part file ended: the bytes before it are not sent again.
        var request = Assert.Single(frameRequests);
        Assert.Equal($"bytes={kept}-", request.Range);
        Assert.Equal(largest.Stored - kept, request.Bytes);
    }

    [Fact]
    public async Task A_damaged_source_file_makes_the_files_coded_from_it_come_from_chunks()
    {
        if (OperatingSystem.IsWindows()) return; // the agent's tree modes are Unix modes
        await using var s = await StartAsync("dev-rs");
        var rig = s.Rig;
        var core = Path.Combine(rig.Device.Layout.Client, "lib", "core.so");
        var mode = File.GetUnixFileMode(core);
        File.SetUnixFileMode(core, mode | UnixFileMode.UserWrite);
        var bytes = File.ReadAllBytes(core);
        bytes[150_000] ^= 0x5a;
        File.WriteAllBytes(core, bytes);
        File.SetUnixFileMode(core, mode);

        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        // lib/core.so and its restamped copy are coded from the damaged file: rebuilt wrong, refused, fetched as chunks.
        Assert.Contains("whole-release delta: built 'lib/core.so'", upgrade.Output);
        Assert.Contains("whole-release delta: built 'plugins/core-copy.so'", upgrade.Output);
        Assert.Contains($"{s.Delta.ReleaseFiles.Count - 2} file(s) from delta patches, 2 fell back to chunks", upgrade.Output);
    }

    [Fact]
    public async Task A_tampered_frame_from_the_gateway_is_refused_before_anything_is_written()
    {
        await using var s = await StartAsync("dev-rt");
        var rig = s.Rig;
        var frame = s.Delta.Release!.Frames[0];
        ServeTampered(rig, frame.Id);

        var upgrade = await Run(rig.Device);
        Assert.Contains($"release delta object {frame.Id} not fetched", upgrade.Output);
        Assert.Contains("do not hash to chunk id", upgrade.Output);
        // The object never reached the cache; the files it carries came from chunks and the tree is exactly 2.0.
        Assert.False(File.Exists(Path.Combine(rig.Device.Layout.ChunkCache, frame.Id.Hex[..2], frame.Id.Hex)));
        Assert.Matches(@"[1-9]\d* fell back to chunks", upgrade.Output);
        AssertTreeIsV2(rig.Device, s.V2);
    }

    [Fact]
    public async Task Executables_upgrade_over_a_chained_schema_4_delta_whose_frames_copy_from_earlier_frames()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-rc4", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        // 3.0 inserts code into the x86-64 program of 2.0 and adds a restamped copy of the new program, whose content
        // only the earlier frames of the stream hold (the source release has the old program).
        var v3Files = Releases.V1();
        v3Files["bin/tool"] = ExecutableSamples.X86Program(600_000, 5000);
        v3Files["bin/tool2"] = Stamp(v3Files["bin/tool"], 4);
        v3Files["lib/core.so"] = Stamp(v3Files["lib/core.so"], 3);
        var v3 = await InstallProgramThenPublishAsync(rig, v3Files);
        var delta = new DeltaBuilder(rig.Store.Store, rig.Store.ContentKey, rig.Store.SigningKey)
            { Level = 3, Method = DeltaBuildMethod.Release, FrameContent = 128 * 1024, OneFrame = false }.Build("acme", "2.0", "3.0").Delta;
        Assert.Equal(DeltaManifest.ChainedReleaseSchema, delta.SchemaVersion);
        Assert.True(delta.Release!.Chained);
        Assert.Equal(BranchFilterKind.X64, Assert.Single(delta.ReleaseFiles, f => f.Path == "bin/tool").Filter);
        Assert.True(delta.Release.Frames.Count >= 8, $"{delta.Release.Frames.Count} frames");

        var fetched = await UpgradeOverReleaseDeltaAsync(rig, v3, v3Files, delta);
        Assert.DoesNotContain(fetched, x => x.Path.StartsWith("chunks/", StringComparison.Ordinal) && delta.Release.Frames.All(f => StoreLayout.ChunkPath(f.Id) != x.Path));
    }

    /// <summary>
    /// Installs 1.0, then 2.0 (1.0 plus an x86-64 program, <c>bin/tool</c>) on the rig's device, and publishes
    /// <paramref name="v3Files"/> as 3.0.
    /// </summary>
    private async Task<PublishResult> InstallProgramThenPublishAsync(HostileGatewayRig rig, Dictionary<string, byte[]> v3Files)
    {
        await Run(rig.Device);
        var v2Files = Releases.V1();
        v2Files["bin/tool"] = ExecutableSamples.X86Program(600_000, 0);
        var v2 = rig.Store.Publish("2.0", v2Files);
        await rig.Node.AssignAsync(rig.Device.Config.DeviceId, "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        await Run(rig.Device);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(rig.Device));
        return rig.Store.Publish("3.0", v3Files);
    }

    /// <summary>
    /// Assigns 3.0 and runs the agent: the tree is exactly 3.0, every release file came from the delta (none fell back),
    /// every frame was fetched, and what was fetched is what <c>orch release plan</c> says. Returns the store requests.
    /// </summary>
    private async Task<List<HostileGateway.StoreRequest>> UpgradeOverReleaseDeltaAsync(HostileGatewayRig rig, PublishResult v3,
        Dictionary<string, byte[]> v3Files, DeltaManifest delta)
    {
        await rig.Node.AssignAsync(rig.Device.Config.DeviceId, "acme", v3.Version, v3.VersionId, v3.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        var upgrade = await Run(rig.Device);
        Releases.AssertTreeIs(rig.Device, v3.InventoryDigest, v3Files);
        Assert.Contains($"{delta.ReleaseFiles.Count} file(s) from delta patches, 0 fell back to chunks", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        Assert.All(delta.Release!.Frames, f => Assert.Contains(fetched, x => x.Path == StoreLayout.ChunkPath(f.Id)));
        var plan = await PlanAsync(rig, "delta", "2.0", "3.0");
        Assert.Equal("delta", (string)plan["method"]!);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        return fetched;
    }

    [Fact]
    public async Task A_signed_delta_of_a_schema_the_agent_does_not_know_is_refused_and_chunks_install_the_release()
    {
        await using var s = await StartAsync("dev-r5");
        var rig = s.Rig;
        // A newer builder's delta (schema 6), signed with the release key: this agent reads schemas 1 to 5 only.
        var path = StoreLayout.DeltaManifestPath("acme", "1.0", "2.0");
        var json = File.ReadAllText(Path.Combine(rig.Store.Root, path)).Replace("\"schema\":4", "\"schema\":6");
        Assert.Contains("\"schema\":6", json);
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        File.WriteAllBytes(Path.Combine(rig.Store.Root, path), bytes);
        File.WriteAllBytes(Path.Combine(rig.Store.Root, StoreLayout.SignaturePathFor(path)),
            Orchestrator.ChunkStore.Manifests.ManifestSigner.Sign(bytes, rig.Store.SigningKey));
        rig.Gateway.StoreLog.Clear();

        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        Assert.Contains("schema 6 is not supported", upgrade.Output);
        Assert.Contains("0 file(s) from delta patches", upgrade.Output);
        Assert.DoesNotContain(rig.Gateway.StoreLog, x => s.Delta.Release!.Frames.Any(f => x.Path == StoreLayout.ChunkPath(f.Id)));
    }

    [Fact]
    public async Task Upgrade_over_a_one_frame_schema_5_delta_fetches_each_object_once_and_exactly_what_release_plan_says()
    {
        await using var s = await StartAsync("dev-r1f", oneFrame: true);
        var rig = s.Rig;
        rig.Gateway.StoreLog.Clear();
        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        Assert.Contains($"{s.Delta.ReleaseFiles.Count} file(s) from delta patches, 0 fell back to chunks", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        // Every object of the one frame, each once, and no chunk: the frame carries every changed file.
        Assert.All(s.Delta.Release!.Frames, f => Assert.Single(fetched, x => x.Path == StoreLayout.ChunkPath(f.Id)));
        Assert.Equal(s.Delta.Release.Frames.Count, fetched.Count(x => x.Path.StartsWith("chunks/", StringComparison.Ordinal)));
        Assert.DoesNotContain(fetched, x => x.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal));

        var plan = await PlanAsync(s, "delta");
        Assert.Equal("delta", (string)plan["method"]!);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        Assert.Equal(s.Delta.Release.Frames.Count, (int)plan["objects"]!);
    }

    [Fact]
    public async Task A_cut_in_the_middle_of_a_one_frame_object_resumes_that_object_and_refetches_no_completed_object()
    {
        await using var s = await StartAsync("dev-r1k", oneFrame: true);
        var rig = s.Rig;
        var objects = s.Delta.Release!.Frames;
        string Cached(DeltaPart p) => Path.Combine(rig.Device.Layout.ChunkCache, p.Id.Hex[..2], p.Id.Hex);
        string Partial(DeltaPart p) => Path.Combine(rig.Device.Layout.PartialChunks, p.Id.Hex + ".part");
        rig.Gateway.TrickleChunksBytesPerSecond = 40_000; // ~1.6 s per 64 KiB object
        using (var p = Process.Start(AgentProcess.StartInfo(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"]))!)
        {
            var outTask = p.StandardOutput.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddSeconds(90);
            // Cut once at least one object is complete and another is part-way.
            while (!(objects.Any(o => File.Exists(Cached(o)))
                     && objects.Any(o => !File.Exists(Cached(o)) && File.Exists(Partial(o)) && new FileInfo(Partial(o)).Length > 0))
                   && !p.HasExited && DateTime.UtcNow < deadline)
                await Task.Delay(20);
            Assert.False(p.HasExited, "the agent finished before an object was part-way with another complete");
            p.Kill();
            await p.WaitForExitAsync();
            output.WriteLine(await outTask);
        }
        var complete = objects.Where(o => File.Exists(Cached(o))).ToList();
        var partial = objects.Where(o => !File.Exists(Cached(o)) && File.Exists(Partial(o)) && new FileInfo(Partial(o)).Length > 0)
            .ToDictionary(o => o, o => new FileInfo(Partial(o)).Length);
        Assert.NotEmpty(complete);
        Assert.NotEmpty(partial);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device)); // nothing of 2.0 installed by the cut run
        rig.Gateway.TrickleChunksBytesPerSecond = null;
        await rig.Gateway.SettleAsync();
        rig.Gateway.StoreLog.Clear();

        var resumed = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, s.V2);
        Assert.Contains("0 fell back to chunks", resumed.Output);
        var log = rig.Gateway.StoreLog.ToList();
        // Completed objects are not fetched again; a part-way one continues from where its part file ended; the rest come once.
        Assert.All(complete, o => Assert.DoesNotContain(log, r => r.Path == StoreLayout.ChunkPath(o.Id)));
        foreach (var (o, kept) in partial)
        {
            var request = Assert.Single(log, r => r.Path == StoreLayout.ChunkPath(o.Id));
            Assert.Equal($"bytes={kept}-", request.Range);
            Assert.Equal(o.Stored - kept, request.Bytes);
        }
        Assert.All(objects.Except(complete).Except(partial.Keys), o => Assert.Single(log, r => r.Path == StoreLayout.ChunkPath(o.Id)));
    }

    [Fact]
    public async Task A_tampered_object_of_a_one_frame_delta_is_refused_and_the_files_from_it_on_come_from_chunks()
    {
        await using var s = await StartAsync("dev-r1t", oneFrame: true);
        var rig = s.Rig;
        var objects = s.Delta.Release!.Frames;
        var bad = objects[objects.Count / 2];
        ServeTampered(rig, bad.Id);

        var upgrade = await Run(rig.Device);
        Assert.Contains($"release delta object {bad.Id} not fetched", upgrade.Output);
        Assert.Contains("do not hash to chunk id", upgrade.Output);
        // The stream stops at the missing object (said in the log); files not complete by then come from chunks.
        Assert.Contains($"release delta object {objects.Count / 2} not used (release delta object {objects.Count / 2} ({bad.Id}) is not available)", upgrade.Output);
        Assert.False(File.Exists(Path.Combine(rig.Device.Layout.ChunkCache, bad.Id.Hex[..2], bad.Id.Hex)));
        Assert.Matches(@"[1-9]\d* fell back to chunks", upgrade.Output);
        AssertTreeIsV2(rig.Device, s.V2);
    }
}
