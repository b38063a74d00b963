using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;

namespace Orchestrator.EndToEnd.Tests.Trust.Support;

/// <summary>
/// A real node with release 1.0 assigned to one device, and that device's real agent talking to the node through a
/// scripted <see cref="HostileGateway"/> (forwarding until a test scripts it otherwise).
/// </summary>
internal sealed class HostileGatewayRig : IAsyncDisposable
{
    private HostileGatewayRig(NodeUnderTest node, TestStore store, PublishResult v1, HostileGateway gateway, TestDevice device)
    {
        Node = node;
        Store = store;
        V1 = v1;
        Gateway = gateway;
        Device = device;
    }

    public NodeUnderTest Node { get; }
    public TestStore Store { get; }
    public PublishResult V1 { get; }
    public HostileGateway Gateway { get; }
    public TestDevice Device { get; }

    /// <param name="deviceId">The device's id.</param>
    /// <param name="download">The agent's download settings.</param>
    /// <param name="nodeSettings">Extra node configuration.</param>
    /// <param name="keysDirectory">An <c>orch keys init</c> folder the store's keys come from (so the real <c>orch</c> can sign for it); fresh keys when null.</param>
    public static async Task<HostileGatewayRig> StartAsync(string deviceId, DownloadSettings download, IDictionary<string, string?>? nodeSettings = null,
        string? keysDirectory = null)
    {
        var node = await NodeUnderTest.StartAsync(nodeSettings);
        var store = new TestStore(node.StoreRoot, keysDirectory);
        var v1 = store.Publish("1.0", Releases.V1());
        var gateway = await HostileGateway.StartAsync(node.BaseUrl);
        var device = new TestDevice(gateway.BaseUrl, credential: await node.ProvisionAsync(deviceId), deviceId: deviceId,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(), download: download);
        await node.AssignAsync(deviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        return new HostileGatewayRig(node, store, v1, gateway, device);
    }

    public Task<AgentProcess.Result> RunAgentAsync() =>
        AgentProcess.RunAsync(["run", "--config", Device.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));

    public async ValueTask DisposeAsync()
    {
        Device.Dispose();
        await Gateway.DisposeAsync();
        Store.Dispose();
        await Node.DisposeAsync();
    }
}
