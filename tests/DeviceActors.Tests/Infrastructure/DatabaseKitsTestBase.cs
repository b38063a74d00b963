using Orchestrator.DeviceActors.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.TestSupport.Akka;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>
/// A private database per test plus any number of actor systems on it (<see cref="NewKit"/>): a new system on the
/// same database is how these tests model a node restart. Every system is terminated before the database is removed.
/// </summary>
public abstract class DatabaseKitsTestBase(PersistenceBackend backend, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<HostedTestKit> _kits = [];

    /// <summary>The test's database (valid after <see cref="InitializeAsync"/>).</summary>
    protected TestDatabase Db { get; private set; } = null!;

    public async Task InitializeAsync() => Db = await TestDatabase.Create(backend);

    public async Task DisposeAsync()
    {
        foreach (var k in _kits) await k.DisposeAsync();
        await Db.DisposeAsync();
    }

    /// <summary>A new actor system configured like a device node, on <see cref="Db"/>.</summary>
    /// <param name="extra">HOCON on top of the node configuration.</param>
    protected async Task<HostedTestKit> NewKit(string extra = "")
    {
        var kit = await DeviceTestKit.Start(Db.Options, output, extra);
        _kits.Add(kit);
        return kit;
    }

    /// <summary>A new cluster node hosting the device region (<paramref name="region"/>) on <see cref="Db"/>.</summary>
    /// <param name="region">Region options.</param>
    /// <param name="extra">HOCON on top; it must make the provider <c>cluster</c>.</param>
    protected async Task<HostedTestKit> NewRegionKit(DeviceActorsHostingOptions region, string extra)
    {
        var kit = await DeviceTestKit.StartRegionNode("test", region, output, extra);
        _kits.Add(kit);
        return kit;
    }
}
