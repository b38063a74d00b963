using Orchestrator.ChunkStore.Deltas;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>The real orch-agent process upgrading through a real node that offers a delta built in its store.</summary>
public sealed class AgentDeltaNodeTests(ITestOutputHelper output)
{
    private async Task<AgentProcess.Result> Run(TestDevice d)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task Upgrade_through_the_node_downloads_the_delta_and_installs_the_exact_release()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.Stamped(1));
        var v2 = store.Publish("2.0", Releases.Stamped(2));
        var delta = new DeltaBuilder(store.Store, store.ContentKey, store.SigningKey) { Level = 3, Method = DeltaBuildMethod.Files }.Build("acme", "1.0", "2.0");
        Assert.True(delta.FilesPatched >= 1);
        var secret = await node.ProvisionAsync("dev-d");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-d",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());

        await node.AssignAsync("dev-d", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var first = await Run(d);
        Assert.Contains("0 file(s) from delta patches", first.Output); // a first install has nothing to patch from
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        await node.AssignAsync("dev-d", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var upgrade = await Run(d);
        Releases.AssertTreeIs(d, v2.InventoryDigest, Releases.Stamped(2));
        Assert.Contains($"{delta.FilesPatched} file(s) from delta patches, 0 fell back to chunks", upgrade.Output);
        Assert.Equal(v2.VersionId, (await node.StateAsync("dev-d")).InstalledVersionId);
    }

    [Fact]
    public async Task A_patch_over_the_memory_limit_is_not_applied_and_the_file_comes_from_chunks()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.Stamped(1));
        var v2 = store.Publish("2.0", Releases.Stamped(2));
        var delta = new DeltaBuilder(store.Store, store.ContentKey, store.SigningKey) { Level = 3, Method = DeltaBuildMethod.Files }.Build("acme", "1.0", "2.0");
        Assert.True(delta.FilesPatched >= 1);
        var secret = await node.ProvisionAsync("dev-m");
        // bin/app (600 kB) needs over 1.2 MB to patch; the 300 kB and smaller files stay under 1 MB.
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-m",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxDeltaApplyBytes = 1_000_000 });

        await node.AssignAsync("dev-m", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        await node.AssignAsync("dev-m", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var upgrade = await Run(d);
        Assert.Contains("delta patch for 'bin/app' needs", upgrade.Output);
        Assert.Contains("over download.maxDeltaApplyBytes 1000000; fetching its chunks instead", upgrade.Output);
        Assert.Contains($"{delta.FilesPatched - 1} file(s) from delta patches", upgrade.Output);
        Releases.AssertTreeIs(d, v2.InventoryDigest, Releases.Stamped(2));
        Assert.Equal(v2.VersionId, (await node.StateAsync("dev-m")).InstalledVersionId);
    }
}
