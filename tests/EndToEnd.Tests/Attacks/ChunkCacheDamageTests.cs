using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>Damaged files in the agent's chunk cache cost a re-download, never a failed attempt.</summary>
public sealed class ChunkCacheDamageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Garbage_under_a_cached_chunk_name_is_fetched_again_and_the_upgrade_succeeds_first_time()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var secret = await node.ProvisionAsync("dev-cache");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-cache",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        await node.AssignAsync("dev-cache", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        Assert.Equal(0, (await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"])).ExitCode);

        // Every chunk 2.0 adds is "already cached" as garbage (a torn write, a bad sector, a tampered file).
        var old = store.Manifest(v1).Files.SelectMany(f => f.Chunks).Select(c => c.Id.Hex).ToHashSet();
        var added = store.Manifest(v2).Files.SelectMany(f => f.Chunks).Select(c => c.Id.Hex).Where(id => !old.Contains(id)).Distinct().ToList();
        Assert.NotEmpty(added);
        foreach (var id in added)
        {
            var path = Path.Combine(d.Layout.ChunkCache, id[..2], id);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, Releases.Bytes(id.GetHashCode(), 1000));
        }

        await node.AssignAsync("dev-cache", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var run = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(run.Output + run.Error);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.DoesNotContain("attempt 1 failed", run.Output + run.Error);
        var state = await node.StateAsync("dev-cache");
        Assert.Equal((DeviceStatus.Completed, v2.VersionId, 0), (state.Status, state.InstalledVersionId, state.FailedAttempts));
        Assert.Null(state.LastFailure);
    }
}
