using Orchestrator.DeviceActors.Persistence;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>
/// A private database per test plus any number of actor systems on it (<see cref="NewKit"/>): a new system on the
/// same database is how these tests model a node restart. Every system is terminated before the database is removed.
/// </summary>
public abstract class DatabaseKitsTestBase(PersistenceBackend backend, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<Akka.TestKit.Xunit2.TestKit> _kits = [];

    /// <summary>The test's database (valid after <see cref="InitializeAsync"/>).</summary>
    protected TestDatabase Db { get; private set; } = null!;

    public async Task InitializeAsync() => Db = await TestDatabase.Create(backend);

    public async Task DisposeAsync()
    {
        foreach (var k in _kits) await k.Sys.Terminate();
        await Db.DisposeAsync();
    }

    /// <summary>A new actor system configured like a device node, on <see cref="Db"/>.</summary>
    /// <param name="extra">HOCON on top of the node configuration.</param>
    protected Akka.TestKit.Xunit2.TestKit NewKit(string extra = "")
    {
        var kit = DeviceTestKit.Create(Db.Options, output, extra);
        _kits.Add(kit);
        return kit;
    }
}
