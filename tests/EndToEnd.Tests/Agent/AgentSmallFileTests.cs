using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Codec;
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
/// The real orch-agent installing, upgrading and repairing a release of many small files packed in a small-file stream
/// (manifest schema 2), through a counting proxy (<see cref="HostileGateway"/>) in front of a real node.
/// </summary>
public sealed class AgentSmallFileTests(ITestOutputHelper output)
{
    private const int Threshold = 16 * 1024;

    /// <summary>A package-like tree: 300 small files of 200 .. 6 000 bytes in nested folders and one 200 kB binary; <paramref name="changed"/> small files get new content.</summary>
    private static Dictionary<string, byte[]> Tree(params int[] changed)
    {
        var files = new Dictionary<string, byte[]> { ["bin/tool"] = Releases.Bytes(7, 200_000) };
        for (var i = 0; i < 300; i++)
            files[$"node_modules/p{i % 17}/lib/f{i:D3}.js"] = Releases.Bytes(changed.Contains(i) ? 9000 + i : 1000 + i, 200 + i * 7919 % 5800);
        return files;
    }

    private async Task<AgentProcess.Result> Run(TestDevice d, int exitCode = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(exitCode, r.ExitCode);
        return r;
    }

    private static void AssertTree(TestDevice d, PublishResult release, Dictionary<string, byte[]> expected) =>
        Releases.AssertTreeIs(d, release.InventoryDigest, expected);

    private async Task<JsonNode> PlanAsync(HostileGatewayRig rig, string from, string to)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "plan", "--store", rig.Store.Root, "--product", "acme",
            "--from", from, "--to", to, "--method", "chunks", "--json");
        return JsonNode.Parse(r.Output)!;
    }

    private void AssertFetchedIsPlan(HostileGatewayRig rig, JsonNode plan)
    {
        var fetched = rig.Gateway.StoreLog.ToList();
        foreach (var f in fetched) output.WriteLine($"{f.Path} {f.Range} {f.Bytes}");
        Assert.Equal((int)plan["requests"]!, fetched.Count);
        Assert.Equal((long)plan["bytes"]!, fetched.Sum(f => f.Bytes));
    }

    private static Dictionary<ChunkId, PackedChunk> Located(HostileGatewayRig rig, PublishResult r)
    {
        var bytes = rig.Store.ManifestBytes(r);
        var m = ManifestSerializer.Parse(bytes);
        return PackIndex.ReadStored(rig.Store.Store, r.ManifestPath, bytes, m)!.Locate(PackIndex.ChunkOrder(m));
    }

    [Fact]
    public async Task Many_small_files_install_upgrade_and_repair_through_the_stream_fetching_exactly_what_release_plan_says()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-sf", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await Run(rig.Device);
        var tree2 = Tree();
        // The same tree in schema 1 (never installed): what the stream saves is measured against it. Its binary differs, so
        // neither release finds chunks in the other's packs (each fetches from its own packs only, as a fresh store would).
        var twin = new Dictionary<string, byte[]>(tree2) { ["bin/tool"] = Releases.Bytes(8, 200_000) };
        rig.Store.Publish("1.5", twin);
        var v2 = rig.Store.Publish("2.0", tree2, smallFilesBelow: Threshold);
        var m2 = rig.Store.Manifest(v2);
        Assert.Equal(Manifest.StreamSchema, m2.SchemaVersion);
        Assert.Equal(300, m2.Files.Count(f => f.InStream));

        // Install: every small file out of the stream, byte for byte, fetching exactly the plan, fewer requests and bytes than schema 1.
        await rig.Node.AssignAsync("dev-sf", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        await Run(rig.Device);
        AssertTree(rig.Device, v2, tree2);
        var plan2 = await PlanAsync(rig, "1.0", "2.0");
        AssertFetchedIsPlan(rig, plan2);
        var plan15 = await PlanAsync(rig, "1.0", "1.5");
        output.WriteLine($"schema 2: {plan2.ToJsonString()}  schema 1: {plan15.ToJsonString()}");
        Assert.True((int)plan2["objects"]! * 4 < (int)plan15["objects"]!, "the stream has far fewer chunks than files");
        Assert.True((long)plan2["bytes"]! < (long)plan15["bytes"]!);
        Assert.True((int)plan2["requests"]! <= (int)plan15["requests"]!);

        // Upgrade: three small files change; only the stream chunks covering new bytes are fetched.
        var tree3 = Tree(5, 150, 151);
        var v3 = rig.Store.Publish("3.0", tree3, smallFilesBelow: Threshold);
        var m3 = rig.Store.Manifest(v3);
        var held = m2.Stream!.Chunks.Select(c => c.Tag).ToHashSet(StringComparer.Ordinal);
        var lacking = m3.Stream!.Chunks.Where(c => !held.Contains(c.Tag)).Select(c => c.Id).Distinct().ToList();
        Assert.InRange(lacking.Count, 1, 6);
        await rig.Node.AssignAsync("dev-sf", "acme", v3.Version, v3.VersionId, v3.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        await Run(rig.Device);
        AssertTree(rig.Device, v3, tree3);
        var plan3 = await PlanAsync(rig, "2.0", "3.0");
        AssertFetchedIsPlan(rig, plan3);
        Assert.Equal(lacking.Count, (int)plan3["objects"]!);
        var located = Located(rig, v3);
        Assert.Equal(PackRanges.Coalesce(lacking.Select(id => located[id])).Sum(r => r.Length),
            rig.Gateway.StoreLog.Where(r => r.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal)).Sum(r => r.Bytes));

        // Repair: one small file deleted, another modified; only the stream chunks covering those two are fetched.
        var deleted = "node_modules/p3/lib/f020.js";
        var modified = "node_modules/p8/lib/f280.js";
        File.Delete(Path.Combine(rig.Device.Layout.Client, deleted));
        var bad = File.ReadAllBytes(Path.Combine(rig.Device.Layout.Client, modified));
        bad[10] ^= 0x55;
        File.WriteAllBytes(Path.Combine(rig.Device.Layout.Client, modified), bad);
        rig.Gateway.StoreLog.Clear();
        var repair = await Run(rig.Device);
        Assert.Contains("repair done", repair.Output);
        AssertTree(rig.Device, v3, tree3);
        var covering = m3.Files.Where(f => f.Path == deleted || f.Path == modified).SelectMany(f => f.Chunks).Select(c => c.Id).Distinct().ToList();
        var packRequests = rig.Gateway.StoreLog.Where(r => r.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal)).ToList();
        foreach (var r in packRequests) output.WriteLine($"repair {r.Path} {r.Range} {r.Bytes}");
        Assert.Equal(PackRanges.Coalesce(covering.Select(id => located.TryGetValue(id, out var c) ? c : Located(rig, v2)[id])).Sum(r => r.Length), packRequests.Sum(r => r.Bytes));
    }

    [Fact]
    public async Task A_mirror_corrupting_stream_chunks_never_gets_bad_bytes_installed()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-sfh", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await Run(rig.Device);
        var v2 = rig.Store.Publish("2.0", Tree(), smallFilesBelow: Threshold);
        await rig.Node.AssignAsync("dev-sfh", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        // Every pack range and chunk object has one bit flipped inside its first chunk.
        rig.Gateway.FlipAt = (path, _) => path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal)
            || path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal) ? 40 : null;
        var failed = await AgentProcess.RunAsync(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(failed.Output + failed.Error);
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("do not hash to chunk id", failed.Output);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        foreach (var (path, content) in Releases.V1())
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(rig.Device.Layout.Client, path)));

        // Only pack ranges corrupted: refused, their chunks come as objects, and the tree is exactly the release.
        rig.Gateway.FlipAt = (path, _) => path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal) ? 40 : null;
        var upgrade = await Run(rig.Device);
        Assert.Contains("do not hash to chunk id", upgrade.Output);
        AssertTree(rig.Device, v2, Tree());
    }

    /// <summary>
    /// What an agent that predates a manifest schema meets: this agent reads schemas 1 and 2, so a validly signed
    /// manifest declaring schema 3 stands for schema 2 in front of an agent built before it. It must refuse the
    /// manifest, fetch no content, keep its release and report the failure.
    /// </summary>
    [Fact]
    public async Task An_agent_meeting_a_manifest_schema_it_does_not_read_refuses_it_and_keeps_its_release()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-sfs", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await Run(rig.Device);
        var v2 = rig.Store.Publish("2.0", Tree(), smallFilesBelow: Threshold);
        var text = System.Text.Encoding.UTF8.GetString(rig.Store.ManifestBytes(v2));
        Assert.StartsWith("{\"schema\":2,", text);
        rig.Store.WriteSigned("acme", "2.0", System.Text.Encoding.UTF8.GetBytes("{\"schema\":3," + text["{\"schema\":2,".Length..]));
        await rig.Node.AssignAsync("dev-sfs", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        var refused = await AgentProcess.RunAsync(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(refused.Output + refused.Error);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("schema 3 is not supported", refused.Output + refused.Error);
        Assert.DoesNotContain(rig.Gateway.StoreLog, r => r.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal)
            || r.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var state = await rig.Node.StateAsync("dev-sfs");
        Assert.Equal(rig.V1.VersionId, state.InstalledVersionId);
        Assert.Contains("schema 3 is not supported", state.LastFailure?.Reason ?? "(no failure recorded)");
    }
}
