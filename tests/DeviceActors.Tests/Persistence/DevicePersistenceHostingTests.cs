using Akka.Actor;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.DeviceActors.Tests.Infrastructure;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Serialization;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>
/// The configuration <c>AddDevicePersistence</c> gives an actor system: what DeviceJournal, the plugin's read journal
/// and snapshot store are started with. Values that reach a database (connection string, schema) must arrive as
/// written, whatever characters they hold.
/// </summary>
public sealed class DevicePersistenceHostingTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(PersistenceBackend.Sqlite)]
    [InlineData(PersistenceBackend.PostgreSql)]
    public async Task The_journals_snapshot_store_and_read_journal_get_the_settings_they_depend_on(PersistenceBackend backend)
    {
        // Quotes, a backslash, '#', '$' and '}' would end or corrupt a HOCON string that is not escaped.
        var options = backend == PersistenceBackend.Sqlite
            ? DevicePersistenceOptions.Sqlite(Path.Combine(Path.GetTempPath(), "orch \"q\" #1 ${x}", "d.db"))
            : DevicePersistenceOptions.PostgreSql("Host=db;Username=orch;Password=p\"w\\d#}${x}", "orch_s");
        await using var kit = await DeviceTestKit.Start(options, output);
        var c = kit.Sys.Settings.Config;

        Assert.Equal(DeviceJournal.PluginId, c.GetString("akka.persistence.journal.plugin"));
        var device = c.GetConfig(DeviceJournal.PluginId);
        Assert.Equal(typeof(DeviceJournal), Type.GetType(device.GetString("class")));
        Assert.Equal(options.ConnectionString, device.GetString("connection-string"));
        Assert.Equal(backend == PersistenceBackend.Sqlite ? "sqlite" : "postgresql", device.GetString("backend"));
        Assert.Equal(options.Schema, device.GetString("schema"));
        Assert.Equal(options.BatchSize, device.GetInt("batch-size"));
        Assert.Equal(options.Parallelism, device.GetInt("parallelism"));

        var isolation = backend == PersistenceBackend.Sqlite ? "read-uncommitted" : "unspecified";
        var query = c.GetConfig("akka.persistence.query.journal.sql");
        Assert.Equal("akka.persistence.journal.sql", query.GetString("write-plugin"));
        Assert.Equal("Csv", query.GetString("tag-read-mode"));
        Assert.Equal(5000, query.GetInt("max-buffer-size"));
        Assert.Equal(options.QueryRefreshInterval, query.GetTimeSpan("refresh-interval"));
        Assert.Equal(options.QueryRefreshInterval, query.GetTimeSpan("journal-sequence-retrieval.query-delay"));
        Assert.Equal("akka.persistence.snapshot-store.sql", c.GetString("akka.persistence.snapshot-store.plugin"));
        foreach (var path in new[] { "akka.persistence.journal.sql", "akka.persistence.snapshot-store.sql", "akka.persistence.query.journal.sql" })
        {
            var plugin = c.GetConfig(path);
            Assert.Equal(options.ConnectionString, plugin.GetString("connection-string"));
            Assert.Equal(options.ProviderName, plugin.GetString("provider-name"));
            Assert.Equal("default", plugin.GetString("table-mapping"));
            Assert.Equal(options.Schema, plugin.GetString("default.schema-name"));
            Assert.Equal(isolation, plugin.GetString("read-isolation-level"));
            Assert.False(plugin.GetBoolean("use-clone-connection"), path);
        }
        Assert.Equal("TagTable", c.GetString("akka.persistence.journal.sql.tag-write-mode"));
        Assert.False(c.GetBoolean("akka.persistence.journal.sql.auto-initialize"));
        Assert.True(c.GetBoolean("akka.persistence.snapshot-store.sql.auto-initialize"));
        Assert.Equal(options.MaxConcurrentRecoveries, c.GetInt("akka.persistence.max-concurrent-recoveries"));

        // Both journals tag device events (the read journal takes its adapters from its write plugin).
        var persistence = Akka.Persistence.Persistence.Instance.Apply(kit.Sys);
        var evt = new DeviceRegistered("acme", ["eu"], DateTimeOffset.UnixEpoch);
        foreach (var plugin in new[] { DeviceJournal.PluginId, "akka.persistence.journal.sql" })
            Assert.IsType<Akka.Persistence.Journal.Tagged>(persistence.AdaptersFor(plugin).Get(evt.GetType()).ToJournal(evt));
        Assert.IsType<OrchestratorSerializer>(kit.Sys.Serialization.FindSerializerFor(evt));
    }
}
