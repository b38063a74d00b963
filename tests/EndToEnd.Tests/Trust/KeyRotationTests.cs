using Orchestrator.ChunkStore.Trust;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Trust;

/// <summary>Issue 14 item 1 with real processes: a device provisioned with root version 1 follows rotations through the store.</summary>
public sealed class KeyRotationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_device_provisioned_with_root_1_follows_root_and_director_rotations_and_accepts_the_new_director()
    {
        using var keys = new TrustKeys();
        var root1 = keys.RootDocument;
        TrustFiles.Rotate(keys.Directory, TrustRoles.Root, DateTimeOffset.UtcNow);     // version 2: new root key, signed by old and new
        TrustFiles.Rotate(keys.Directory, TrustRoles.Director, DateTimeOffset.UtcNow); // version 3: new director key
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings()); // signs with the rotated director key
        using var store = new TestStore(node.StoreRoot, keys.Directory);
        var v1 = store.Publish("1.0", Releases.V1());
        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync("rot-1"), deviceId: "rot-1",
            contentKey: store.ContentKey.ToBytes(), trustRoot: root1, download: TestDevice.FastDownloads with { MaxSessionAttempts = 1, RequestTimeoutSeconds = 20 });
        await node.AssignAsync("rot-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        // Without the newer roots in the store the device knows only director key 1: the new director's directive is refused.
        var refused = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(refused.Output + refused.Error);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("0 valid signature(s) of the 'director' role of root version 1", refused.Output);
        Assert.Equal(root1, d.Hidden.ReadRequired(HiddenItem.TrustRoot));

        keys.PublishRoots(store.Store);
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("trust root updated to version 2", r.Output);
        Assert.Contains("trust root updated to version 3", r.Output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(keys.Directory, TrustFiles.VersionFile(3))), d.Hidden.ReadRequired(HiddenItem.TrustRoot));
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
    }
}
