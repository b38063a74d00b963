using LinqToDB;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Orchestrator.DeviceActors.Persistence;

/// <summary>Which database the device journal, snapshots and read journal use.</summary>
public enum PersistenceBackend
{
    /// <summary>Embedded SQLite file (provider <c>SQLite.MS</c>, one writer).</summary>
    Sqlite,
    /// <summary>PostgreSQL server (provider <c>PostgreSQL.15</c>).</summary>
    PostgreSql,
}

/// <summary>
/// Database settings of the device actors' persistence (<see cref="Journal.DeviceJournal"/> plus Akka.Persistence.Sql's
/// snapshot store and read journal). Create with <see cref="Sqlite"/> or
/// <see cref="PostgreSql"/>, call <see cref="PrepareDatabase"/> once before the actor system starts, and pass to
/// <see cref="Hosting.DevicePersistenceHosting.AddDevicePersistence"/>.
/// </summary>
public sealed record DevicePersistenceOptions
{
    private DevicePersistenceOptions(PersistenceBackend backend, string connectionString, string providerName, int parallelism, string? schema)
    {
        Backend = backend;
        ConnectionString = connectionString;
        ProviderName = providerName;
        Parallelism = parallelism;
        Schema = schema;
    }

    /// <summary>SQLite or PostgreSQL.</summary>
    public PersistenceBackend Backend { get; }

    /// <summary>ADO.NET connection string.</summary>
    public string ConnectionString { get; }

    /// <summary>LinqToDB provider name (<c>SQLite.MS</c> or <c>PostgreSQL.15</c>).</summary>
    public string ProviderName { get; }

    /// <summary>Concurrent journal writers, each with its own connection (1 for SQLite: one file, one writer).</summary>
    public int Parallelism { get; }

    /// <summary>PostgreSQL schema holding the tables (null: the server default, <c>public</c>).</summary>
    public string? Schema { get; }

    /// <summary>How often persistence query polls for new tagged events (the registry's staleness bound).</summary>
    public TimeSpan QueryRefreshInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How many persistent actors may recover at the same time.</summary>
    public int MaxConcurrentRecoveries { get; init; } = 200;

    /// <summary>
    /// Most journal rows <see cref="Journal.DeviceJournal"/> writes in one transaction. Under load a batch is whatever
    /// is waiting, up to this; 1000 is the raw baseline's batch in bench/results/device-actors.md.
    /// </summary>
    public int BatchSize { get; init; } = 1000;

    /// <summary>Embedded default: one SQLite file; its directory is created if missing.</summary>
    /// <param name="filePath">Database file, e.g. <c>./data/orchestrator.db</c>.</param>
    public static DevicePersistenceOptions Sqlite(string filePath)
    {
        if (string.IsNullOrWhiteSpace(filePath) || filePath.Contains(":memory:", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException(
                $"SQLite persistence needs a file path, got '{filePath}': in-memory databases lose every event at shutdown.", nameof(filePath));
        var csb = new SqliteConnectionStringBuilder
        {
            DataSource = Path.GetFullPath(filePath),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 60, // seconds; Microsoft.Data.Sqlite retries SQLITE_BUSY until then
        };
        return new DevicePersistenceOptions(PersistenceBackend.Sqlite, csb.ConnectionString, LinqToDB.ProviderName.SQLiteMS, 1, null);
    }

    /// <summary>Scale-out: a PostgreSQL server.</summary>
    /// <param name="connectionString">Npgsql connection string.</param>
    /// <param name="schema">Schema for the tables (created by <see cref="PrepareDatabase"/>); null for the default.</param>
    /// <param name="parallelism">Concurrent journal writers per node.</param>
    public static DevicePersistenceOptions PostgreSql(string connectionString, string? schema = null, int parallelism = 3)
    {
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException)
        {
            throw new ArgumentException($"Invalid PostgreSQL connection string: {e.Message}", nameof(connectionString), e);
        }
        if (schema is not null && !System.Text.RegularExpressions.Regex.IsMatch(schema, @"^[a-z_][a-z0-9_]{0,62}\z"))
            throw new ArgumentException($"Invalid schema name '{schema}': use lower-case letters, digits and '_' (max 63).", nameof(schema));
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        return new DevicePersistenceOptions(PersistenceBackend.PostgreSql, connectionString, LinqToDB.ProviderName.PostgreSQL15, parallelism, schema);
    }

    /// <summary>
    /// One-time database preparation before the actor system starts: for SQLite create the directory and switch the
    /// file to WAL (readers - recovery, persistence query - no longer block the writer); for PostgreSQL create the
    /// schema. Then the journal's tables (<c>journal</c>, <c>tags</c>, the plugin's DDL; DeviceJournal repeats this
    /// idempotently at start). The snapshot table is created by the plugin's snapshot store (<c>auto-initialize</c>).
    /// </summary>
    public async Task PrepareDatabase(CancellationToken cancellationToken = default)
    {
        if (Backend == PersistenceBackend.Sqlite)
        {
            var path = new SqliteConnectionStringBuilder(ConnectionString).DataSource;
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var c = new SqliteConnection(ConnectionString);
            await c.OpenAsync(cancellationToken);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL;";
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await using var store = Journal.JournalStore.For(this);
        await store.EnsureTables(cancellationToken);
    }
}
