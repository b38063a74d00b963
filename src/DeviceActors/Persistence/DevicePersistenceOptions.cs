using Orchestrator.Messages.Storage;
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
/// Database settings of Akka.Persistence.Sql for the device actors. Create with <see cref="Sqlite"/> or
/// <see cref="PostgreSql"/>, call <see cref="PrepareDatabase"/> once before the actor system starts, and pass to
/// <see cref="DeviceActorsConfig.Build"/>.
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

    /// <summary>Concurrent journal writers (1 for SQLite: one file, one writer).</summary>
    public int Parallelism { get; }

    /// <summary>PostgreSQL schema holding the tables (null: the server default, <c>public</c>).</summary>
    public string? Schema { get; }

    /// <summary>How often persistence query polls for new tagged events (the registry's staleness bound).</summary>
    public TimeSpan QueryRefreshInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How many persistent actors may recover at the same time.</summary>
    public int MaxConcurrentRecoveries { get; init; } = 200;

    /// <summary>
    /// Akka.Persistence.Sql <c>tagtable-asqueryable-insert-mode</c>: <c>off</c>, <c>parameterized</c> or <c>inline</c>.
    /// Default per backend, from bench/results/device-actors.md: PostgreSQL <c>parameterized</c> (one
    /// <c>INSERT ... RETURNING</c> per batch instead of one round trip per event: 2.3x the events/s, half the CPU per
    /// event); SQLite <c>off</c> (no round trips to save in-process; no measurable difference).
    /// </summary>
    public string TagInsertMode { get; init; } = "off";

    /// <summary>Journal batch size (events per database round trip).</summary>
    public int BatchSize { get; init; } = 100;

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
        if (schema is not null && !System.Text.RegularExpressions.Regex.IsMatch(schema, "^[a-z_][a-z0-9_]{0,62}$"))
            throw new ArgumentException($"Invalid schema name '{schema}': use lower-case letters, digits and '_' (max 63).", nameof(schema));
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        return new DevicePersistenceOptions(PersistenceBackend.PostgreSql, connectionString, LinqToDB.ProviderName.PostgreSQL15, parallelism, schema)
        {
            TagInsertMode = "parameterized",
        };
    }

    /// <summary>
    /// One-time database preparation the plugin does not do itself: for SQLite create the directory and switch the
    /// file to WAL (readers - persistence query - no longer block the writer); for PostgreSQL create the schema.
    /// Tables are created by the plugin (<c>auto-initialize = on</c>).
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
        else if (Schema is not null)
        {
            await using var c = new NpgsqlConnection(ConnectionString);
            await c.OpenAsync(cancellationToken);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = PostgresSchemaLock.Prefix + $"CREATE SCHEMA IF NOT EXISTS \"{Schema}\"";
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
    }
}
