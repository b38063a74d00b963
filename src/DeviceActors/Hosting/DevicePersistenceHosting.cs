using System.Data;
using System.Globalization;
using Akka.Hosting;
using Akka.Persistence.Hosting;
using Akka.Persistence.Sql;
using Akka.Persistence.Sql.Config;
using Akka.Persistence.Sql.Hosting;
using SqlJournalOptions = Akka.Persistence.Sql.Hosting.SqlJournalOptions;
using SqlSnapshotOptions = Akka.Persistence.Sql.Hosting.SqlSnapshotOptions;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Serialization;

namespace Orchestrator.DeviceActors.Hosting;

/// <summary>
/// Persistence of the device actors, the Akka.Hosting way: our message serializer, our write journal
/// <see cref="DeviceJournal"/> (default journal, writing Akka.Persistence.Sql's tables) with the device event tagger,
/// Akka.Persistence.Sql's snapshot store (default snapshot store) and its read journal
/// (<c>akka.persistence.query.journal.sql</c>). Part of <see cref="DeviceActorsHosting.AddDeviceActors"/>; on its own
/// for actor systems that host device actors without sharding (tests, benchmarks).
/// </summary>
public static class DevicePersistenceHosting
{
    /// <summary>Event adapter name of <see cref="DeviceEventTagger"/> on both journal plugins.</summary>
    private const string TaggerName = "device-tagger";

    /// <summary>Registers the serializer, journals, snapshot store and read journal for <paramref name="options"/>.</summary>
    /// <param name="builder">The actor system's builder.</param>
    /// <param name="options">Database settings (call <see cref="DevicePersistenceOptions.PrepareDatabase"/> before the system starts).</param>
    public static AkkaConfigurationBuilder AddDevicePersistence(this AkkaConfigurationBuilder builder, DevicePersistenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        builder.WithCustomSerializer(OrchestratorSerialization.Name, OrchestratorSerialization.BoundTypes, system => new OrchestratorSerializer(system));
        var readIsolation = ReadIsolationLevel(options.Backend);
        builder.WithJournal(new DeviceJournalOptions(options), j => j.AddWriteEventAdapter<DeviceEventTagger>(TaggerName, [typeof(IDeviceEvent)]));
        // Never the journal of an actor. The plugin's read journal names it as its `write-plugin`: it starts it, asks it
        // whether it is initialized (an internal message only the plugin's journal answers) and takes the event adapters
        // from it. It writes nothing and creates no tables (DeviceJournal does). Its options also write the read
        // journal's section (connection, mapping, write-plugin, refresh interval).
        builder.WithJournal(new SqlJournalOptions(isDefaultPlugin: false, identifier: "sql")
        {
            ConnectionString = options.ConnectionString,
            ProviderName = options.ProviderName,
            TagStorageMode = TagMode.TagTable,
            ReadIsolationLevel = readIsolation,
            AutoInitialize = false,
            QueryRefreshInterval = options.QueryRefreshInterval,
            DatabaseOptions = new JournalDatabaseOptions(DatabaseMapping.Default) { SchemaName = options.Schema },
        }, j => j.AddWriteEventAdapter<DeviceEventTagger>(TaggerName, [typeof(IDeviceEvent)]));
        builder.WithSnapshot(new SqlSnapshotOptions(isDefaultPlugin: true)
        {
            ConnectionString = options.ConnectionString,
            ProviderName = options.ProviderName,
            ReadIsolationLevel = readIsolation,
            AutoInitialize = true,
            DatabaseOptions = new SnapshotDatabaseOptions(DatabaseMapping.Default) { SchemaName = options.Schema },
        });
        // The plugin's snapshot store with our recovery read (DeviceSnapshotStore): tables, writes and other reads stay the plugin's.
        builder.AddHocon($$"""
            akka.persistence.snapshot-store.sql {
              class = {{typeof(DeviceSnapshotStore).AssemblyQualifiedName!.Split(", Version")[0].ToHocon()}}
              device-backend = {{(options.Backend == PersistenceBackend.Sqlite ? "sqlite" : "postgresql")}}
              device-schema = {{(options.Schema ?? "").ToHocon()}}
            }
            """, HoconAddMode.Prepend);
        // The read journal's defaults (class, DAO, sequence retrieval): the plugin's reference config is not loaded automatically.
        builder.AddHocon(SqlPersistence.DefaultConfiguration, HoconAddMode.Append);
        builder.AddHocon(Unexpressed(options), HoconAddMode.Prepend);
        return builder;
    }

    /// <summary>
    /// What Akka.Persistence.Hosting and Akka.Persistence.Sql.Hosting 1.5.70 have no option for: the recovery
    /// concurrency, <c>use-clone-connection</c>, a read journal whose tag-read mode differs from the write mode, its
    /// buffer size and sequence-retrieval delay. Numbers and keywords only (nothing to escape).
    /// </summary>
    private static string Unexpressed(DevicePersistenceOptions options)
    {
        var refresh = $"{(long)options.QueryRefreshInterval.TotalMilliseconds}ms";
        return string.Create(CultureInfo.InvariantCulture, $$"""
            akka.persistence {
              # After a restart every device recovers on first contact; 50 (the default) serializes a fleet's recovery needlessly.
              max-concurrent-recoveries = {{options.MaxConcurrentRecoveries}}
              journal.sql.use-clone-connection = off
              snapshot-store.sql.use-clone-connection = off
              query.journal.sql {
                # Csv: DeviceJournal writes the journal's tags column as well as the tag rows; the TagTable read query
                # scans the whole tags table per returned event (see JournalStore.CsvTags), the Csv one reads a range of
                # the journal by ordering.
                tag-read-mode = Csv
                use-clone-connection = off
                # Rows per EventsByTag query (default 500): fewer round trips when the registry catches up after a restart.
                max-buffer-size = 5000
                journal-sequence-retrieval.query-delay = {{refresh}}
              }
            }
            """);
    }

    /// <summary>
    /// Isolation level of the plugin's read transactions (snapshot lookup, persistence query; DeviceJournal's own
    /// recovery reads use no explicit transaction, see SqliteJournalStore).
    /// SQLite: Microsoft.Data.Sqlite opens every transaction except a ReadUncommitted one with <c>BEGIN IMMEDIATE</c>,
    /// i.e. it takes the database's single write lock, so every recovery read and every registry poll queued behind
    /// the journal writer, and a loser of that race got SQLITE_BUSY and slept in the driver's retry loop.
    /// For ReadUncommitted on a private-cache connection (ours, see <see cref="DevicePersistenceOptions.Sqlite"/>)
    /// the driver runs a plain deferred <c>BEGIN</c> at Serializable level instead (read_uncommitted only exists with
    /// a shared cache): a WAL read snapshot that neither takes nor waits for the write lock, and sees only committed
    /// data. PostgreSQL keeps the server default (read committed).
    /// </summary>
    internal static IsolationLevel ReadIsolationLevel(PersistenceBackend backend) =>
        backend == PersistenceBackend.Sqlite ? IsolationLevel.ReadUncommitted : IsolationLevel.Unspecified;
}
