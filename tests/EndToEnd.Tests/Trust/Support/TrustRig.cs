using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.TestSupport;
using Xunit;

namespace Orchestrator.EndToEnd.Tests.Trust.Support;

/// <summary>
/// A node with a root document and its director key, 1.0 and 2.0 published, and a scripted hostile gateway in front of
/// it: where the trust attack tests put their devices.
/// </summary>
public sealed class TrustRig : IAsyncDisposable
{
    public required TrustKeys Keys { get; init; }
    public required NodeUnderTest Node { get; init; }
    public required TestStore Store { get; init; }
    public required HostileGateway Hostile { get; init; }
    public required PublishResult V1 { get; init; }
    public required PublishResult V2 { get; init; }

    /// <summary>Starts the node (directives valid for <paramref name="lifetimeMinutes"/>), the store and the gateway.</summary>
    public static async Task<TrustRig> StartAsync(double lifetimeMinutes = 10)
    {
        var keys = new TrustKeys();
        var settings = keys.NodeSettings(lifetimeMinutes);
        // Attacks end in failed attempts; a short announced backoff lets the honest run that follows each one start at once.
        settings["Devices:RetryBase"] = "00:00:00.100";
        settings["Devices:RetryCap"] = "00:00:00.500";
        var node = await NodeUnderTest.StartAsync(settings);
        var store = new TestStore(node.StoreRoot, keys.Directory);
        keys.PublishRoots(store.Store);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var hostile = await HostileGateway.StartAsync(node.BaseUrl);
        return new TrustRig { Keys = keys, Node = node, Store = store, Hostile = hostile, V1 = v1, V2 = v2 };
    }

    /// <summary>A device provisioned with the root document, talking to the hostile gateway.</summary>
    public async Task<TestDevice> DeviceAsync(string id, int attempts = 2)
    {
        var secret = await Node.ProvisionAsync(id);
        return new TestDevice(Hostile.BaseUrl, credential: secret, deviceId: id, contentKey: Store.ContentKey.ToBytes(),
            trustRoot: Keys.RootDocument, download: TestDevice.FastDownloads with { MaxSessionAttempts = attempts, RequestTimeoutSeconds = 20 });
    }

    /// <summary>The installed tree (digest) and every hidden-zone file (bytes).</summary>
    public static (string Tree, Dictionary<string, string> Hidden) Snapshot(TestDevice d) =>
        (Releases.ClientDigest(d), Directory.GetFiles(d.Config.Zones.Hidden).ToDictionary(f => Path.GetFileName(f)!, f => Convert.ToHexString(File.ReadAllBytes(f))));

    /// <summary>The device's tree and hidden zone are exactly as in <paramref name="before"/>.</summary>
    public static void AssertUnchanged((string Tree, Dictionary<string, string> Hidden) before, TestDevice d)
    {
        var after = Snapshot(d);
        Assert.Equal(before.Tree, after.Tree);
        Assert.Equal(before.Hidden.OrderBy(k => k.Key), after.Hidden.OrderBy(k => k.Key));
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Hostile.DisposeAsync();
        Store.Dispose();
        await Node.DisposeAsync();
        Keys.Dispose();
    }
}
