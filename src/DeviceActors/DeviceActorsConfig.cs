using System.Globalization;
using System.Text;
using Akka.Configuration;
using Akka.Persistence.Sql;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.Messages.Serialization;

namespace Orchestrator.DeviceActors;

/// <summary>
/// Builds the HOCON the device actors need: our serializer binding, our write journal <see cref="DeviceJournal"/>
/// (plugin id <c>akka.persistence.journal.device</c>, writing Akka.Persistence.Sql's tables) with the device event
/// tagger, Akka.Persistence.Sql's snapshot store and read journal (<c>akka.persistence.snapshot-store.sql</c>,
/// <c>akka.persistence.query.journal.sql</c>), and the sharding settings
/// (<c>state-store-mode = ddata</c>, remember-entities off, idle passivation done by the actor itself).
/// The node adds it to its own configuration (e.g. Akka.Hosting <c>AddHocon(config, HoconAddMode.Prepend)</c>);
/// cluster provider, remoting and seed nodes stay the node's business.
/// </summary>
public static class DeviceActorsConfig
{
    /// <summary>The full configuration for <paramref name="options"/>.</summary>
    /// <param name="options">Database settings.</param>
    public static Config Build(DevicePersistenceOptions options) =>
        ConfigurationFactory.ParseString(BuildHocon(options))
            .WithFallback(OrchestratorSerialization.Config)
            // The plugin's reference config is not loaded automatically; its defaults (class names, table mappings) go under ours.
            .WithFallback(SqlPersistence.DefaultConfiguration);

    /// <summary>The HOCON text of <see cref="Build"/> without the serialization part (for logging and inspection).</summary>
    /// <param name="options">Database settings.</param>
    public static string BuildHocon(DevicePersistenceOptions options)
    {
        var cs = Quote(options.ConnectionString);
        var provider = Quote(options.ProviderName);
        var schema = options.Schema is null ? "null" : Quote(options.Schema);
        var refresh = $"{(int)options.QueryRefreshInterval.TotalMilliseconds}ms";
        var tagger = Quote(typeof(DeviceEventTagger).AssemblyQualifiedName!.Split(", Version")[0]);
        var eventInterface = Quote("Orchestrator.Messages.Devices.IDeviceEvent, Orchestrator.Messages");
        var readIsolation = ReadIsolationLevel(options.Backend);
        var journalClass = Quote(typeof(DeviceJournal).AssemblyQualifiedName!.Split(", Version")[0]);
        var snapshotClass = Quote(typeof(DeviceSnapshotStore).AssemblyQualifiedName!.Split(", Version")[0]);
        var backend = options.Backend == PersistenceBackend.Sqlite ? "sqlite" : "postgresql";
        return string.Create(CultureInfo.InvariantCulture, $$"""
            akka.persistence {
              # After a restart every device recovers on first contact; 50 (the default) serializes a fleet's recovery needlessly.
              max-concurrent-recoveries = {{options.MaxConcurrentRecoveries}}
              journal {
                plugin = "{{DeviceJournal.PluginId}}"
                # Our write journal: Akka.Persistence.Sql's rows, written in batched transactions (Persistence/Journal).
                device {
                  class = {{journalClass}}
                  plugin-dispatcher = "akka.actor.default-dispatcher"
                  backend = {{backend}}
                  connection-string = {{cs}}
                  schema = {{schema}}
                  batch-size = {{options.BatchSize}}
                  parallelism = {{options.Parallelism}}
                  event-adapters { device-tagger = {{tagger}} }
                  event-adapter-bindings { {{eventInterface}} = device-tagger }
                }
                # Never the journal of an actor. The plugin's read journal names it as its `write-plugin`: it starts it,
                # asks it whether it is initialized (an internal message only the plugin's journal answers) and takes the
                # event adapters from it. It writes nothing and creates no tables (DeviceJournal does).
                sql {
                  connection-string = {{cs}}
                  provider-name = {{provider}}
                  table-mapping = default
                  tag-write-mode = TagTable
                  use-clone-connection = off
                  read-isolation-level = {{readIsolation}}
                  auto-initialize = off
                  default.schema-name = {{schema}}
                  event-adapters { device-tagger = {{tagger}} }
                  event-adapter-bindings { {{eventInterface}} = device-tagger }
                }
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql {
                  # The plugin's store with our recovery read (DeviceSnapshotStore); tables and writes are the plugin's.
                  class = {{snapshotClass}}
                  device-backend = {{backend}}
                  device-schema = {{schema}}
                  connection-string = {{cs}}
                  provider-name = {{provider}}
                  table-mapping = default
                  use-clone-connection = off
                  read-isolation-level = {{readIsolation}}
                  auto-initialize = on
                  default.schema-name = {{schema}}
                }
              }
              query.journal.sql {
                write-plugin = "akka.persistence.journal.sql"
                connection-string = {{cs}}
                provider-name = {{provider}}
                table-mapping = default
                # Csv: DeviceJournal writes the journal's tags column as well as the tag rows; the TagTable read query
                # scans the whole tags table per returned event (see JournalStore.CsvTags), the Csv one reads a range of
                # the journal by ordering.
                tag-read-mode = Csv
                use-clone-connection = off
                read-isolation-level = {{readIsolation}}
                refresh-interval = {{refresh}}
                # Rows per EventsByTag query (default 500): fewer round trips when the registry catches up after a restart.
                max-buffer-size = 5000
                journal-sequence-retrieval.query-delay = {{refresh}}
                default.schema-name = {{schema}}
              }
            }
            akka.cluster.sharding {
              state-store-mode = ddata
              remember-entities = off
              # DeviceActor passivates itself after its offline timeout, so the shard must not stop it earlier.
              passivate-idle-entity-after = off
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
    private static string ReadIsolationLevel(PersistenceBackend backend) =>
        backend == PersistenceBackend.Sqlite ? "read-uncommitted" : "unspecified";

    private static string Quote(string s)
    {
        var b = new StringBuilder("\"");
        foreach (var ch in s)
            b.Append(ch switch { '"' => "\\\"", '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => ch.ToString() });
        return b.Append('"').ToString();
    }
}
