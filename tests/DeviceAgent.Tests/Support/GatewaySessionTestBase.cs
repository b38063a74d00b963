using Orchestrator.DeviceAgent.Download;

namespace Orchestrator.DeviceAgent.Tests.Support;

/// <summary>
/// A real store, a real HTTP gateway serving it and a provisioned device that trusts the store's keys: the setup
/// every agent session test starts from.
/// </summary>
public abstract class GatewaySessionTestBase : IAsyncLifetime
{
    protected TestStore Store { get; } = new();
    protected FakeGateway Gateway { get; private set; } = null!;
    protected TestDevice Device { get; private set; } = null!;
    protected HttpClient Http { get; } = StoreDownloader.CreateHttpClient();

    public async Task InitializeAsync()
    {
        Gateway = await FakeGateway.StartAsync(Store.Root, TestDevice.Credential);
        Device = new TestDevice(Gateway.BaseUrl, contentKey: Store.ContentKey.ToBytes(), trustRoot: Store.SigningKey.PublicKey.ToBytes());
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        Device.Dispose();
        Store.Dispose();
        Http.Dispose();
    }
}
