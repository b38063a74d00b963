using System.Security.Cryptography;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>Simulated devices (real agent sessions) reach the real node only through a proxy that cuts and corrupts responses.</summary>
public sealed class NetworkFaultTests(ITestOutputHelper output)
{
    internal static DownloadSettings FastRetries => new()
    {
        BackoffBaseMilliseconds = 20, BackoffCapMilliseconds = 300, RequestTimeoutSeconds = 5, MinRateWindowSeconds = 2, Parallelism = 2,
    };

    [Fact]
    public async Task Agents_resume_through_cut_and_corrupted_responses_and_install_exactly_the_release()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        await using var proxy = new FaultProxy(new Uri(node.BaseUrl).Port);
        using var dir = new TempDir();
        using var fleet = new FleetSimulator(new SimulationOptions
        {
            Devices = 4, Gateway = proxy.BaseUrl, Root = dir.Path, Product = "acme", ContentKey = store.ContentKey.ToBytes(),
            TrustRoot = store.SigningKey.PublicKey.ToBytes(), Concurrency = 4, CheckInIntervalSeconds = 0.2, StartSpreadSeconds = 0.2,
            Download = FastRetries, Seed = 1,
        });
        await fleet.PrepareAsync((id, _) => node.ProvisionAsync(id), CancellationToken.None);
        foreach (var d in fleet.Devices) await node.AssignAsync(d.DeviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(50));
        var final = await fleet.RunAsync(TimeSpan.FromMilliseconds(200), null, s => s.AtLeast(v1.VersionId) == s.Devices, timeout.Token);
        foreach (var (reason, count) in fleet.TopFailures(10)) output.WriteLine($"{count} x {reason}");
        output.WriteLine($"cuts {proxy.Cuts}, corruptions {proxy.Corruptions}, failed attempts {final.FailedAttempts}");

        Assert.Equal(4, final.AtLeast(v1.VersionId));
        Assert.True(proxy.Cuts > 0, "the proxy never cut a response: the test exercised nothing");
        Assert.True(proxy.Corruptions > 0, "the proxy never corrupted a response: the test exercised nothing");
        foreach (var d in fleet.Devices)
        {
            // Exactly the release, byte for byte, nothing unverified left in the chunk cache, and no build left behind.
            Assert.Equal(v1.InventoryDigest, TreeInventory.Digest(TreeInventory.Scan(d.Layout.Client)));
            Assert.False(Directory.Exists(TreeBuild.FolderOf(d.Layout)), "the finished install left its build folder");
            foreach (var cached in Directory.Exists(d.Layout.ChunkCache) ? Directory.EnumerateFiles(d.Layout.ChunkCache, "*", SearchOption.AllDirectories) : [])
                Assert.Equal(Path.GetFileName(cached), Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(cached))));
            var state = await node.StateAsync(d.DeviceId);
            Assert.Equal(v1.VersionId, state.InstalledVersionId);
            // Completed, or Idle when a later check-in (every 0.2 s here) found nothing more to do; never work left.
            Assert.Contains(state.Status, new[] { DeviceStatus.Completed, DeviceStatus.Idle });
            Assert.Null(state.Work);
        }
    }
}
