using Akka.Actor;
using Microsoft.Data.Sqlite;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Tests.Infrastructure;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>
/// SQLite has one write lock per database file. The plugin's read transactions (recovery: snapshot lookup, highest
/// sequence number, replay) must not take it, or every recovery queues behind the journal writer (and loses 150 ms
/// per SQLITE_BUSY in Microsoft.Data.Sqlite's retry loop). See <c>DevicePersistenceHosting.ReadIsolationLevel</c>.
/// </summary>
public sealed class SqliteLockingTests(ITestOutputHelper output) : DatabaseKitsTestBase(PersistenceBackend.Sqlite, output)
{
    private static readonly DeviceActorSettings Settings =
        new(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    [Fact]
    public async Task A_device_recovers_while_another_connection_holds_the_write_lock()
    {
        var first = await NewKit();
        foreach (var id in new[] { "dev-locked", "dev-warm" })
        {
            var a = first.Sys.ActorOf(DeviceActor.Props(id, Settings));
            await a.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", ["eu"], T0), TimeSpan.FromSeconds(15));
            await a.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", ["us"], T0), TimeSpan.FromSeconds(15));
        }
        await first.Sys.Terminate();

        // A second system whose journal and snapshot store are started (tables checked) before the lock is taken.
        var second = await NewKit();
        var warm = second.Sys.ActorOf(DeviceActor.Props("dev-warm", Settings));
        Assert.Equal(2, (await warm.Ask<DeviceState>(new GetDeviceState("dev-warm"), TimeSpan.FromSeconds(15))).EventCount);

        await using var writer = new SqliteConnection(Db.Options.ConnectionString);
        await writer.OpenAsync();
        await using var tx = writer.BeginTransaction(deferred: false); // BEGIN IMMEDIATE: holds the write lock
        await using (var insert = writer.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = "CREATE TABLE lock_holder (x INTEGER)";
            await insert.ExecuteNonQueryAsync();
        }

        // Recovery reads only; with BEGIN IMMEDIATE reads it would wait for the lock (up to the 60 s busy timeout).
        var locked = second.Sys.ActorOf(DeviceActor.Props("dev-locked", Settings));
        var state = await locked.Ask<DeviceState>(new GetDeviceState("dev-locked"), TimeSpan.FromSeconds(5));
        Assert.Equal(2, state.EventCount);
        Assert.Equal(["us"], state.Tags);
        await tx.RollbackAsync();
    }
}
