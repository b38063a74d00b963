using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The real orch-agent upgrading 1.0 -> 2.0 on the chunk path through pack objects of a real node's store: every store
/// request passes a counting proxy (<see cref="HostileGateway"/>) that can also cut a response or flip a byte of it.
/// </summary>
public sealed class AgentPackTests(ITestOutputHelper output)
{
    /// <summary>Node, proxy, 1.0 installed, 2.0 published (with packs) and assigned; the proxy's log cleared.</summary>
    private async Task<(HostileGatewayRig Rig, PublishResult V2)> StartAsync(string deviceId)
    {
        var rig = await HostileGatewayRig.StartAsync(deviceId, TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await Run(rig.Device);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var v2 = rig.Store.Publish("2.0", Releases.V2());
        Assert.True(File.Exists(Path.Combine(rig.Store.Root, StoreLayout.PackIndexPath("acme", "2.0"))));
        await rig.Node.AssignAsync(deviceId, "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        return (rig, v2);
    }

    private async Task<AgentProcess.Result> Run(TestDevice d, int exitCode = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(exitCode, r.ExitCode);
        return r;
    }

    private static void AssertTreeIsV2(TestDevice d, PublishResult v2) => Releases.AssertTreeIs(d, v2.InventoryDigest, Releases.V2());

    private async Task<JsonNode> PlanAsync(HostileGatewayRig rig)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "plan", "--store", rig.Store.Root, "--product", "acme",
            "--from", "1.0", "--to", "2.0", "--method", "chunks", "--json");
        return JsonNode.Parse(r.Output)!;
    }

    /// <summary>The 2.0 chunks 1.0 lacks (by plaintext tag), as the pack index of 2.0 locates them.</summary>
    private static List<PackedChunk> NewChunks(HostileGatewayRig rig)
    {
        var store = rig.Store.Store;
        var m1 = ManifestSerializer.Parse(store.ReadFile(StoreLayout.ManifestPath("acme", "1.0"))!);
        var bytes = store.ReadFile(StoreLayout.ManifestPath("acme", "2.0"))!;
        var m2 = ManifestSerializer.Parse(bytes);
        var held = m1.Files.SelectMany(f => f.Chunks).Select(c => c.Tag).ToHashSet(StringComparer.Ordinal);
        var located = PackIndex.ReadStored(store, StoreLayout.ManifestPath("acme", "2.0"), bytes, m2)!.Locate(PackIndex.ChunkOrder(m2));
        return m2.Files.SelectMany(f => f.Chunks).Where(c => !held.Contains(c.Tag)).Select(c => located[c.Id]).DistinctBy(c => c.Chunk).ToList();
    }

    private static bool IsPack(HostileGateway.StoreRequest r) => r.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal);

    [Fact]
    public async Task Upgrade_fetches_the_missing_chunks_as_coalesced_pack_ranges_exactly_as_release_plan_says()
    {
        var (rig, v2) = await StartAsync("dev-pk");
        await using var _ = rig;
        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        var fetched = rig.Gateway.StoreLog.ToList();
        foreach (var f in fetched) output.WriteLine($"{f.Path} {f.Range} {f.Bytes}");
        var wanted = NewChunks(rig);
        Assert.True(wanted.Count >= 5, $"{wanted.Count} new chunks");
        // No chunk object: the pack index, then Range requests on packs, far fewer than the chunks they carry.
        Assert.DoesNotContain(fetched, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
        Assert.Contains(fetched, f => f.Path == StoreLayout.PackIndexPath("acme", "2.0"));
        var ranges = fetched.Where(IsPack).ToList();
        Assert.NotEmpty(ranges);
        Assert.All(ranges, r => Assert.StartsWith("bytes=", r.Range));
        Assert.True(ranges.Count < wanted.Count, $"{ranges.Count} range requests for {wanted.Count} chunks");
        Assert.Equal(PackRanges.Coalesce(wanted).Count, ranges.Count);
        Assert.Equal(PackRanges.Coalesce(wanted).Sum(r => r.Length), ranges.Sum(r => r.Bytes));

        var plan = await PlanAsync(rig);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        Assert.Equal(wanted.Count, (int)plan["objects"]!);
        Assert.Contains($"{fetched.Sum(f => f.Bytes)} bytes downloaded for this install", upgrade.Output);
    }

    [Fact]
    public async Task From_a_store_holding_each_chunk_once_in_packs_gc_of_a_dropped_release_keeps_every_chunk_of_the_kept_ones_and_repairs_come_from_packs()
    {
        var (rig, v2) = await StartAsync("dev-pgc");
        await using var _ = rig;
        var files3 = Releases.V2();
        files3["share/extra.bin"] = Releases.Bytes(303, 150_000);
        var v3 = rig.Store.Publish("3.0", files3);
        var store = rig.Store.Store;
        // Each chunk once: no chunk objects, only packs.
        Assert.Empty(store.EnumerateChunks());
        var plan = await PlanAsync(rig);

        // gc drops 1.0: its packs hold chunks 2.0 and 3.0 still use, so they stay (whole); nothing a kept release needs goes.
        var gc = await OrchProcess.OkAsync(rig.Node, output, "store", "gc", "--store", rig.Store.Root, "--keep-last", "2", "--json");
        var report = JsonNode.Parse(gc.Output)!;
        Assert.Equal("acme/1.0", (string)report["versionsRemoved"]![0]!);
        Assert.True((long)report["packsPartlyLive"]! >= 1);
        Assert.False(File.Exists(Path.Combine(rig.Store.Root, StoreLayout.ManifestPath("acme", "1.0"))));
        var verify = new Orchestrator.ChunkStore.Maintenance.StoreMaintenance(store).Verify(rig.Store.SigningKey.PublicKey, contentKey: rig.Store.ContentKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        Assert.True(verify.FilesDecrypted > 0);

        // The agent still holding 1.0 installs 2.0 out of the kept packs, fetching exactly what the plan said before gc.
        rig.Gateway.StoreLog.Clear();
        await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        var fetched = rig.Gateway.StoreLog.ToList();
        Assert.Equal((long)plan["bytes"]!, fetched.Sum(f => f.Bytes));
        Assert.Equal((int)plan["requests"]!, fetched.Count);
        Assert.Contains(fetched, IsPack);

        // And 3.0, from packs only.
        await rig.Node.AssignAsync("dev-pgc", "acme", v3.Version, v3.VersionId, v3.ManifestPath);
        await Run(rig.Device);
        Assert.Equal(v3.InventoryDigest, Releases.ClientDigest(rig.Device));
        var extra = Path.Combine(rig.Device.Layout.Client, "share/extra.bin");
        Assert.Equal(files3["share/extra.bin"], File.ReadAllBytes(extra));

        // A damaged file is repaired out of the packs as well: Range requests, no chunk object.
        var damaged = File.ReadAllBytes(extra);
        damaged[1234] ^= 0x55;
        File.WriteAllBytes(extra, damaged);
        rig.Gateway.StoreLog.Clear();
        var repair = await Run(rig.Device);
        Assert.Contains("repair done", repair.Output);
        Assert.Equal(files3["share/extra.bin"], File.ReadAllBytes(extra));
        Assert.Equal(v3.InventoryDigest, Releases.ClientDigest(rig.Device));
        Assert.Contains(rig.Gateway.StoreLog, IsPack);
        Assert.DoesNotContain(rig.Gateway.StoreLog, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_connection_cut_mid_pack_range_resumes_from_the_bytes_it_has_without_fetching_any_again()
    {
        var (rig, v2) = await StartAsync("dev-pc");
        await using var _ = rig;
        var wanted = PackRanges.Coalesce(NewChunks(rig));
        var first = wanted.OrderByDescending(r => r.Length).First();
        // Cut the first request of the largest range in the middle of one of its chunks (not at a chunk boundary).
        var middle = first.Chunks[first.Chunks.Count / 2];
        var cutAt = middle.Offset - first.Offset + middle.Stored / 2;
        var cuts = 0;
        rig.Gateway.CutAfter = (path, range) => path == StoreLayout.PackPath(first.Pack) && range == $"bytes={first.Offset}-{first.End - 1}"
            && Interlocked.Increment(ref cuts) == 1 ? cutAt : null;

        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        Assert.Equal(1, cuts);
        var fetched = rig.Gateway.StoreLog.Where(r => r.Path == StoreLayout.PackPath(first.Pack)).ToList();
        foreach (var f in fetched) output.WriteLine($"{f.Path} {f.Range} {f.Bytes}");
        // The continuation asks for exactly the bytes after the cut: nothing received is fetched again.
        Assert.Contains(fetched, f => f.Range == $"bytes={first.Offset + cutAt}-{first.End - 1}" && f.Bytes == first.Length - cutAt);
        Assert.Equal(first.Length, fetched.Where(f => f.Range!.EndsWith($"-{first.End - 1}", StringComparison.Ordinal)).Sum(f => f.Bytes));
        var plan = await PlanAsync(rig);
        var all = rig.Gateway.StoreLog.ToList();
        Assert.Equal((long)plan["bytes"]!, all.Sum(f => f.Bytes));
        Assert.Equal((int)plan["requests"]! + 1, all.Count);
        Assert.DoesNotContain(all, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
        Assert.Contains("failed", upgrade.Output);
    }

    [Fact]
    public async Task A_tampered_pack_range_is_refused_its_chunks_come_from_their_own_objects_and_the_tree_is_exactly_the_release()
    {
        var (rig, v2) = await StartAsync("dev-pt");
        await using var _ = rig;
        // The store holds each chunk only in packs: the node's chunk endpoint serves the objects out of them.
        Assert.Empty(rig.Store.Store.EnumerateChunks());
        // Every pack response has one bit flipped inside its first chunk.
        rig.Gateway.FlipAt = (path, _) => path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal) ? 40 : null;
        var upgrade = await Run(rig.Device);
        Assert.Contains("do not hash to chunk id", upgrade.Output);
        Assert.Contains("fetched as chunk objects", upgrade.Output);
        AssertTreeIsV2(rig.Device, v2);
        var fetched = rig.Gateway.StoreLog.ToList();
        var wanted = NewChunks(rig);
        // Only the chunks the refused ranges carried come as objects; each chunk object at most once.
        var objects = fetched.Where(f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(objects);
        Assert.All(objects, o => Assert.Contains(wanted, w => o.Path == StoreLayout.ChunkPath(w.Chunk)));
        Assert.Equal(objects.Count, objects.Select(o => o.Path).Distinct().Count());
    }

    [Fact]
    public async Task Tampered_packs_and_chunk_objects_fail_the_session_and_leave_the_installed_release_untouched()
    {
        var (rig, _) = await StartAsync("dev-pf");
        await using var __ = rig;
        rig.Gateway.FlipAt = (path, _) => path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal)
            || path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal) ? 40 : null;
        var failed = await AgentProcess.RunAsync(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(failed.Output + failed.Error);
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("do not hash to chunk id", failed.Output);
        Releases.AssertTreeIs(rig.Device, rig.V1.InventoryDigest, Releases.V1());
    }

    [Fact]
    public async Task A_kill_mid_pack_keeps_every_placed_chunk_and_the_restart_asks_for_none_of_them_again()
    {
        var (rig, v2) = await StartAsync("dev-pkill");
        await using var _ = rig;
        var wanted = NewChunks(rig).ToDictionary(c => c.Chunk.Hex);
        var m2 = rig.Store.Manifest(v2);
        var content = Releases.V2();
        // Packs trickle at 100 kB/s, so the agent is caught with some new chunks placed in its build and others not.
        rig.Gateway.TrickleChunksBytesPerSecond = 100_000;
        var psi = AgentProcess.StartInfo(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"]);
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (!p.HasExited && DateTime.UtcNow < deadline && !Releases.BuiltChunks(rig.Device, m2, content).Any(wanted.ContainsKey))
                await Task.Delay(10);
            Assert.False(p.HasExited, "the agent finished before it could be killed mid-pack");
            p.Kill();
            await p.WaitForExitAsync();
            output.WriteLine(await stdout);
        }
        var placed = Releases.BuiltChunks(rig.Device, m2, content).Where(wanted.ContainsKey).ToHashSet();
        Assert.NotEmpty(placed);
        Assert.True(placed.Count < wanted.Count, "every new chunk was placed before the kill");
        rig.Gateway.TrickleChunksBytesPerSecond = null;
        await rig.Gateway.SettleAsync();
        rig.Gateway.StoreLog.Clear();

        await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        var ranges = rig.Gateway.StoreLog.Where(IsPack).ToList();
        foreach (var r in ranges) output.WriteLine($"{r.Path} {r.Range} {r.Bytes}");
        Assert.NotEmpty(ranges);
        // No range of the restart covers a chunk the first run placed; together they cover every other new chunk.
        foreach (var r in ranges)
        {
            var bounds = r.Range!["bytes=".Length..].Split('-').Select(long.Parse).ToArray();
            Assert.DoesNotContain(placed, id => wanted[id].Offset >= bounds[0] && wanted[id].Offset + wanted[id].Stored - 1 <= bounds[1]
                && r.Path == StoreLayout.PackPath(wanted[id].Pack));
        }
        Assert.Equal(PackRanges.Coalesce(wanted.Values.Where(c => !placed.Contains(c.Chunk.Hex))).Sum(r => r.Length), ranges.Sum(r => r.Bytes));
    }
}
