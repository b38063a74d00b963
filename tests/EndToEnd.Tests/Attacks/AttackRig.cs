using System.Security.Cryptography;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>
/// What every attack test starts from: a node, a store with releases 1.0 and 2.0, and a real device that installed 1.0
/// through the node. <see cref="HiddenZone"/> fingerprints the hidden zone so a test can show an attack changed nothing.
/// </summary>
internal sealed class AttackRig : IAsyncDisposable
{
    private AttackRig(NodeUnderTest node, TestStore store, PublishResult v1, PublishResult v2, TestDevice device)
    {
        Node = node;
        Store = store;
        V1 = v1;
        V2 = v2;
        Device = device;
    }

    public NodeUnderTest Node { get; }
    public TestStore Store { get; }
    public PublishResult V1 { get; }
    public PublishResult V2 { get; }
    public TestDevice Device { get; }

    public static async Task<AttackRig> StartAsync(string deviceId, int sessionAttempts, Action<TestStore, PublishResult>? tamper = null)
    {
        var node = await NodeUnderTest.StartAsync();
        var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        tamper?.Invoke(store, v2);
        var secret = await node.ProvisionAsync(deviceId);
        var device = new TestDevice(node.BaseUrl, credential: secret, deviceId: deviceId,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = sessionAttempts });
        var rig = new AttackRig(node, store, v1, v2, device);
        await node.AssignAsync(deviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var first = await rig.RunAgentAsync();
        Assert.True(first.ExitCode == 0, first.Output + first.Error);
        return rig;
    }

    public Task<AgentProcess.Result> RunAgentAsync() => AgentProcess.RunAsync(["run", "--config", Device.Config.SourcePath!, "--no-client"]);

    public Dictionary<string, string> HiddenZone() =>
        Directory.GetFiles(Device.Layout.Zones.Hidden, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(Device.Layout.Zones.Hidden, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    public async ValueTask DisposeAsync()
    {
        Device.Dispose();
        Store.Dispose();
        await Node.DisposeAsync();
    }
}
