using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The real orch-agent upgrading 1.0 -> 2.0 through a counting proxy (<see cref="HostileGateway"/>) in front of a real
/// node, where the publish wrote 2.0's compact manifests (docs/store-format.md "Compact manifests"): the agent installed
/// 1.0 itself, so it keeps 1.0's verified manifest and fetches 2.0's manifest as a patch against it. The proxy can flip a
/// bit of, or replace, what the store serves; the agent must never accept anything but the signed manifest.
/// </summary>
public sealed class AgentCompactManifestTests(ITestOutputHelper output)
{
    private static string V2Json => StoreLayout.ManifestPath("acme", "2.0");
    private static string V2Whole => StoreLayout.CompactManifestPath(V2Json);
    private static string V2Patch(PublishResult v1) => StoreLayout.ManifestPatchPath(V2Json, v1.VersionId);

    /// <summary>Node, proxy, 1.0 installed by the agent, 2.0 published and assigned, the proxy's log cleared.</summary>
    private async Task<(HostileGatewayRig Rig, PublishResult V2)> StartAsync(string deviceId)
    {
        // A 2 MiB manifest bound: what a frame may declare without a directive pinning the length (these devices hold a bare release key).
        var rig = await HostileGatewayRig.StartAsync(deviceId, TestDevice.FastDownloads with { MaxSessionAttempts = 1, MaxManifestBytes = 2 << 20 });
        await Run(rig.Device);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var v2 = rig.Store.Publish("2.0", Releases.V2());
        Assert.True(rig.Store.Store.FileExists(V2Patch(rig.V1)), "the publish wrote no manifest patch against 1.0");
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

    private async Task<JsonNode> PlanAsync(HostileGatewayRig rig)
    {
        var r = await OrchProcess.OkAsync(rig.Node, output, "release", "plan", "--store", rig.Store.Root, "--product", "acme",
            "--from", "1.0", "--to", "2.0", "--method", "chunks", "--json");
        return JsonNode.Parse(r.Output)!;
    }

    private static void AssertTreeIs(TestDevice d, PublishResult release, IReadOnlyDictionary<string, byte[]> expected)
    {
        Releases.AssertTreeIs(d, release.InventoryDigest, expected);
        Assert.False(File.Exists(d.Layout.Journal));
    }

    private static string[] ManifestRequests(HostileGatewayRig rig) =>
        rig.Gateway.StoreLog.Where(f => f.Path.StartsWith(StoreLayout.ManifestsDirectory + "/acme/2.0.", StringComparison.Ordinal)
            && !f.Path.EndsWith(".sig", StringComparison.Ordinal) && !f.Path.EndsWith(StoreLayout.PackIndexSuffix, StringComparison.Ordinal)
            && !f.Path.EndsWith(StoreLayout.ChunkPatchIndexSuffix, StringComparison.Ordinal)).Select(f => f.Path).ToArray();

    [Fact]
    public async Task Upgrade_fetches_the_target_manifest_as_a_patch_against_the_installed_one_exactly_as_release_plan_counts()
    {
        var (rig, v2) = await StartAsync("dev-cm");
        await using var _ = rig;
        var upgrade = await Run(rig.Device);
        AssertTreeIs(rig.Device, v2, Releases.V2());
        var fetched = rig.Gateway.StoreLog.ToList();
        foreach (var f in fetched) output.WriteLine($"{f.Path} {f.Range} {f.Bytes}");
        Assert.Equal([V2Patch(rig.V1)], ManifestRequests(rig));
        var patchBytes = fetched.Single(f => f.Path == V2Patch(rig.V1)).Bytes;
        var jsonBytes = rig.Store.ManifestBytes(v2).Length;
        Assert.True(patchBytes * 3 < jsonBytes, $"manifest patch {patchBytes} B vs JSON {jsonBytes} B");

        var plan = await PlanAsync(rig);
        Assert.Equal(fetched.Count, (int)plan["requests"]!);
        Assert.Equal(fetched.Sum(f => f.Bytes), (long)plan["bytes"]!);
        Assert.Contains($"{fetched.Sum(f => f.Bytes)} bytes downloaded for this install", upgrade.Output);
        // The device now keeps 2.0's manifest (the next upgrade's reference), and only that.
        var kept = Assert.Single(Directory.GetFiles(rig.Device.Layout.KeptManifests));
        Assert.Equal(rig.Store.ManifestBytes(v2), File.ReadAllBytes(kept));
    }

    [Fact]
    public async Task A_gateway_corrupting_the_patch_and_bombing_the_whole_frame_is_refused_and_the_plain_json_installs_the_release()
    {
        var (rig, v2) = await StartAsync("dev-cmh");
        await using var _ = rig;
        var patch = V2Patch(rig.V1);
        rig.Gateway.FlipAt = (path, _) => path == patch ? 20 : null;
        // A frame of 8 MiB of zeros, a few hundred bytes on the wire: more than the agent's manifest bound, never decoded.
        var bomb = CompactManifest.Encode([], new byte[8 << 20]);
        rig.Gateway.OnStore = path => path == V2Whole ? bomb : null;
        var upgrade = await Run(rig.Device);
        Assert.Contains($"compact manifest '{patch}' not usable", upgrade.Output);
        Assert.Contains($"compact manifest '{V2Whole}' not usable", upgrade.Output);
        Assert.Contains($"compact manifest '{V2Whole}' declares {8 << 20} bytes, at most {2 << 20}", upgrade.Output);
        Assert.Contains($"compact manifest '{patch}' does not decode to the", upgrade.Output);
        Assert.Equal([patch, V2Whole, V2Json], ManifestRequests(rig));
        AssertTreeIs(rig.Device, v2, Releases.V2());
    }

    [Fact]
    public async Task A_gateway_serving_an_oversized_patch_and_a_damaged_manifest_fails_the_session_with_the_installed_release_untouched()
    {
        var (rig, _) = await StartAsync("dev-cmf");
        await using var __ = rig;
        var patch = V2Patch(rig.V1);
        // Four MiB: more than the agent's manifest bound, refused at that length (never decoded).
        var oversized = new byte[4 << 20];
        rig.Gateway.OnStore = path => path == patch ? oversized : null;
        rig.Gateway.FlipAt = (path, _) => path == V2Whole || path == V2Json ? 40 : null;
        var failed = await AgentProcess.RunAsync(["run", "--config", rig.Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(failed.Output + failed.Error);
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains($"compact manifest '{patch}' not usable", failed.Output);
        Assert.Contains($"compact manifest '{V2Whole}' not usable", failed.Output);
        AssertTreeIs(rig.Device, rig.V1, Releases.V1());
        Assert.Equal(rig.V1.VersionId, rig.Device.Hidden.ReadVersionRecord()!.VersionId);
        Assert.DoesNotContain(rig.Gateway.StoreLog, f => f.Path.StartsWith(StoreLayout.ChunksDirectory + "/", StringComparison.Ordinal)
            || f.Path.StartsWith(StoreLayout.PacksDirectory + "/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_tampered_copy_of_the_installed_manifest_is_not_used_and_the_whole_frame_installs_the_release()
    {
        var (rig, v2) = await StartAsync("dev-cmt");
        await using var _ = rig;
        var kept = Assert.Single(Directory.GetFiles(rig.Device.Layout.KeptManifests));
        Assert.Equal(rig.Store.ManifestBytes(rig.V1), File.ReadAllBytes(kept));
        var tampered = File.ReadAllBytes(kept);
        tampered[tampered.Length / 2] ^= 1;
        File.WriteAllBytes(kept, tampered);
        var upgrade = await Run(rig.Device);
        Assert.Contains("does not hash to the sealed SHA-256", upgrade.Output);
        Assert.Equal([V2Whole], ManifestRequests(rig));
        AssertTreeIs(rig.Device, v2, Releases.V2());
    }

    [Fact]
    public async Task With_a_root_document_the_directive_pins_the_length_a_compact_manifest_must_declare_and_another_signed_manifests_frame_is_refused()
    {
        using var keys = new TrustKeys();
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings());
        using var store = new TestStore(node.StoreRoot, keys.Directory);
        keys.PublishRoots(store.Store);
        var v1 = store.Publish("1.0", Releases.V1());
        await using var gateway = await HostileGateway.StartAsync(node.BaseUrl);
        using var d = new TestDevice(gateway.BaseUrl, credential: await node.ProvisionAsync("dev-cmd"), deviceId: "dev-cmd",
            contentKey: store.ContentKey.ToBytes(), trustRoot: keys.RootDocument, download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await node.AssignAsync("dev-cmd", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        var v2 = store.Publish("2.0", Releases.V2());
        await node.AssignAsync("dev-cmd", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var patch = V2Patch(v1);
        // The whole frame of 1.0's manifest: a well-formed frame of a validly signed manifest, of another length than the pinned one.
        var foreign = store.Store.ReadFile(StoreLayout.CompactManifestPath(v1.ManifestPath))!;
        gateway.OnStore = path => path == patch ? foreign : null;
        gateway.StoreLog.Clear();
        var upgrade = await Run(d);
        Assert.Contains($"compact manifest '{patch}' declares {store.ManifestBytes(v1).Length} bytes, the directive pins {store.ManifestBytes(v2).Length}", upgrade.Output);
        Assert.Equal([patch, V2Whole], gateway.StoreLog.Where(f => f.Path.StartsWith("manifests/acme/2.0.", StringComparison.Ordinal)
            && (f.Path.EndsWith(".zst", StringComparison.Ordinal) || f.Path.EndsWith(".json", StringComparison.Ordinal))).Select(f => f.Path));
        AssertTreeIs(d, v2, Releases.V2());
    }
}
