using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The real orch-agent upgrading 1.0 -> 2.0 on the chunk path when the real <c>orch release chunk-patches</c> has coded
/// 2.0's new chunks against 1.0: every store request passes a counting proxy (<see cref="HostileGateway"/>) that can also
/// flip a byte of a response. 2.0 restamps every file of 1.0 every 3000 bytes, so chunk dedup reuses nothing of them and
/// each chunk's patch against 1.0's bytes is a fraction of the chunk.
/// </summary>
public sealed class AgentChunkPatchTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Node, proxy, 1.0 installed, 2.0 published (packs) and assigned; the store's keys in an <c>orch keys init</c> folder.</summary>
    private async Task<(HostileGatewayRig Rig, PublishResult V2, string Keys)> StartAsync(string deviceId)
    {
        var keys = _dir.Folder("keys");
        KeyFiles.Generate(keys);
        var rig = await HostileGatewayRig.StartAsync(deviceId, TestDevice.FastDownloads with { MaxSessionAttempts = 1 }, keysDirectory: keys);
        await Run(rig.Device);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var v2 = rig.Store.Publish("2.0", Releases.Stamped(2));
        await rig.Node.AssignAsync(deviceId, "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        rig.Gateway.StoreLog.Clear();
        return (rig, v2, keys);
    }

    private async Task<AgentProcess.Result> Run(TestDevice d, int exitCode = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(exitCode, r.ExitCode);
        return r;
    }

    private async Task<JsonNode> BuildPatchesAsync(HostileGatewayRig rig, string keys)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "chunk-patches", "--store", rig.Store.Root, "--keys", keys,
            "--product", "acme", "--version", "2.0", "--json");
        return JsonNode.Parse(r.Output)!;
    }

    private async Task<JsonNode> PlanAsync(HostileGatewayRig rig)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "plan", "--store", rig.Store.Root, "--product", "acme",
            "--from", "1.0", "--to", "2.0", "--method", "chunks", "--json");
        return JsonNode.Parse(r.Output)!;
    }

    private static void AssertTreeIsV2(TestDevice d, PublishResult v2) => Releases.AssertTreeIs(d, v2.InventoryDigest, Releases.Stamped(2));

    private static ChunkPatchIndex PatchIndex(HostileGatewayRig rig)
    {
        var path = StoreLayout.ManifestPath("acme", "2.0");
        var bytes = rig.Store.Store.ReadFile(path)!;
        return ChunkPatchIndex.ReadStored(rig.Store.Store, path, bytes, ManifestSerializer.Parse(bytes))!;
    }

    private static bool IsPack(HostileGateway.StoreRequest r) => r.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal);

    [Fact]
    public async Task Upgrade_rebuilds_the_new_chunks_from_patches_against_the_installed_files_fetching_exactly_what_release_plan_says_and_less_than_chunks()
    {
        var (rig, v2, keys) = await StartAsync("dev-cp");
        await using var _ = rig;
        var withoutPatches = await PlanAsync(rig);
        var built = await BuildPatchesAsync(rig, keys);
        Assert.False((bool)built["alreadyBuilt"]!);
        Assert.True((int)built["patched"]! >= 5, $"{built["patched"]} chunks patched");
        Assert.True((long)built["patchBytes"]! * 4 < (long)built["chunkBytesReplaced"]!);
        // Idempotent: a second run finds the index and writes nothing.
        Assert.True((bool)(await BuildPatchesAsync(rig, keys))["alreadyBuilt"]!);
        var index = PatchIndex(rig);
        Assert.Equal((int)built["patched"]!, index.Entries.Count);
        // The store's own check applies every patch to its base region as a device would.
        var verify = JsonNode.Parse((await OrchProcess.OkAsync(rig.Node, output, "store", "verify", "--store", rig.Store.Root, "--keys", keys,
            "--decrypt", "--json")).Output)!;
        Assert.True((bool)verify["ok"]!, verify.ToJsonString());
        Assert.Equal(index.Entries.Count, (long)verify["chunkPatchesRebuilt"]!);

        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        Assert.Contains($"{index.Entries.Count} of {index.Entries.Count} chunk(s) rebuilt from chunk patches", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        foreach (var f in fetched) output.WriteLine($"{f.Path} {f.Range} {f.Bytes}");
        Assert.Contains(fetched, f => f.Path == StoreLayout.ChunkPatchIndexPathFor(StoreLayout.ManifestPath("acme", "2.0")) && f.Bytes > 0);
        Assert.DoesNotContain(fetched, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal));
        var patchPacks = index.Packs.Select(p => StoreLayout.PackPath(p.Id)).ToHashSet();
        var patchRanges = fetched.Where(f => patchPacks.Contains(f.Path)).ToList();
        Assert.NotEmpty(patchRanges);
        Assert.All(patchRanges, r => Assert.StartsWith("bytes=", r.Range));
        Assert.True(patchRanges.Count < index.Entries.Count, $"{patchRanges.Count} range requests for {index.Entries.Count} patches");

        var plan = await PlanAsync(rig);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        Assert.Contains($"{fetched.Sum(f => f.Bytes)} bytes downloaded for this install", upgrade.Output);
        output.WriteLine($"with patches {plan["bytes"]} bytes in {plan["requests"]} requests; without {withoutPatches["bytes"]} in {withoutPatches["requests"]}");
        Assert.True((long)plan["bytes"]! * 2 < (long)withoutPatches["bytes"]!, $"{plan["bytes"]} vs {withoutPatches["bytes"]} bytes");
    }

    [Fact]
    public async Task A_device_whose_base_file_was_modified_fetches_that_files_chunks_and_still_installs_the_release()
    {
        var (rig, v2, keys) = await StartAsync("dev-cpm");
        await using var _ = rig;
        await BuildPatchesAsync(rig, keys);
        var app = Path.Combine(rig.Device.Layout.Client, "bin/app");
        var changed = File.ReadAllBytes(app);
        changed[123_456] ^= 0x5a;
        File.WriteAllBytes(app, changed);

        var upgrade = await Run(rig.Device);
        AssertTreeIsV2(rig.Device, v2);
        // bin/app's chunks have no usable base: they come from 2.0's packs; the other files' chunks from their patches.
        var m1 = ManifestSerializer.Parse(rig.Store.Store.ReadFile(StoreLayout.ManifestPath("acme", "1.0"))!);
        var appSha = m1.Files.Single(f => f.Path == "bin/app").Sha256;
        var index = PatchIndex(rig);
        var appChunks = index.Entries.Count(e => index.Bases[e.Base].Sha256 == appSha);
        Assert.True(appChunks > 0);
        var patched = index.Entries.Count;
        Assert.Contains($"{patched - appChunks} of {patched - appChunks} chunk(s) rebuilt from chunk patches", upgrade.Output);
        var fetched = rig.Gateway.StoreLog.ToList();
        Assert.Contains(fetched, f => f.Path == StoreLayout.PackIndexPath("acme", "2.0"));
        var patchPacks = PatchIndex(rig).Packs.Select(p => StoreLayout.PackPath(p.Id)).ToHashSet();
        Assert.Contains(fetched, f => IsPack(f) && !patchPacks.Contains(f.Path));
        Assert.Contains(fetched, f => patchPacks.Contains(f.Path));
    }

    [Fact]
    public async Task A_mirror_serving_corrupted_patch_ranges_is_refused_and_the_chunks_themselves_install_the_exact_release()
    {
        var (rig, v2, keys) = await StartAsync("dev-cpt");
        await using var _ = rig;
        await BuildPatchesAsync(rig, keys);
        var patchPacks = PatchIndex(rig).Packs.Select(p => StoreLayout.PackPath(p.Id)).ToHashSet();
        // Every response on a patch pack has one bit flipped inside its first patch object.
        rig.Gateway.FlipAt = (path, _) => patchPacks.Contains(path) ? 30 : null;

        var upgrade = await Run(rig.Device);
        Assert.Contains("do not hash to chunk id", upgrade.Output);
        AssertTreeIsV2(rig.Device, v2);
        var fetched = rig.Gateway.StoreLog.ToList();
        // The refused patches' chunks came from 2.0's own packs (or chunk objects), never from the corrupt bytes.
        Assert.Contains(fetched, f => IsPack(f) && !patchPacks.Contains(f.Path));
        Assert.Matches(@"\d+ of \d+ chunk\(s\) rebuilt from chunk patches; [1-9]\d* fall back", upgrade.Output);
    }

    [Fact]
    public async Task Corrupted_patches_and_chunks_fail_the_session_and_leave_the_installed_release_untouched()
    {
        var (rig, _, keys) = await StartAsync("dev-cpf");
        await using var __ = rig;
        await BuildPatchesAsync(rig, keys);
        rig.Gateway.FlipAt = (path, _) => IsPack(new HostileGateway.StoreRequest(path, null, 0))
            || path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal) ? 30 : null;
        var failed = await AgentProcess.RunAsync(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(failed.Output + failed.Error);
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("do not hash to chunk id", failed.Output);
        Releases.AssertTreeIs(rig.Device, rig.V1.InventoryDigest, Releases.V1());
    }
    [Fact]
    public async Task A_node_with_Deltas_ChunkPatches_builds_the_targets_chunk_patches_against_the_most_common_installed_version_when_a_rollout_starts()
    {
        var keys = _dir.Folder("node-keys");
        KeyFiles.Generate(keys);
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Deltas:KeysDirectory"] = keys, ["Deltas:ChunkPatches"] = "true" });
        using var store = new TestStore(node.StoreRoot, keys);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.Stamped(2));
        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync("dev-cpn"), deviceId: "dev-cpn",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        await node.AssignAsync("dev-cpn", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        using var admin = new HttpClient { BaseAddress = new Uri(node.BaseUrl) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (JsonDocument.Parse(await admin.GetStringAsync($"admin/v1/devices?versionId={v1.VersionId}")).RootElement.GetProperty("total").GetInt32() < 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "the device registry did not show the device on 1.0");
            await Task.Delay(100);
        }
        var indexPath = StoreLayout.ChunkPatchIndexPathFor(v2.ManifestPath);
        Assert.False(store.Store.FileExists(indexPath));
        using (var created = await admin.PostAsJsonAsync("admin/v1/rollouts",
                   new { id = "ro-cpn", product = "acme", version = "2.0", selector = new { deviceIds = new[] { "dev-cpn" } } }))
            Assert.True(created.IsSuccessStatusCode, $"create rollout: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
        deadline = DateTime.UtcNow.AddSeconds(120);
        while (store.Store.ReadFile(indexPath) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the node did not build the chunk patches within 120 s of the rollout");
            await Task.Delay(200);
        }
        var bytes = store.ManifestBytes(v2);
        var index = ChunkPatchIndex.VerifyAndParse(store.Store.ReadFile(indexPath)!, store.SigningKey.PublicKey, PackIndex.ManifestHashOf(bytes),
            PackIndex.ChunkOrder(ManifestSerializer.Parse(bytes)).Count);
        Assert.Equal(PackIndex.ManifestHashOf(store.ManifestBytes(v1)), index.BaseManifestSha256);
        Assert.True(index.Entries.Count >= 5, $"{index.Entries.Count} patches");
        Assert.All(index.Packs, p => Assert.True(store.Store.FileExists(StoreLayout.PackPath(p.Id))));
    }
}
