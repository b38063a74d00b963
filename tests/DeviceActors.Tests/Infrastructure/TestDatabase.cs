using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.TestSupport;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>
/// A private database per test: a SQLite file in a fresh temp directory, or a fresh schema on the PostgreSQL
/// server named by ORCH_TEST_POSTGRES. Disposing removes it.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly string? _tempDir;

    private TestDatabase(DevicePersistenceOptions options, string? tempDir)
    {
        Options = options;
        _tempDir = tempDir;
    }

    /// <summary>Options pointing at this database.</summary>
    public DevicePersistenceOptions Options { get; private set; }

    /// <summary>Creates and prepares the database.</summary>
    public static async Task<TestDatabase> Create(PersistenceBackend backend, TimeSpan? queryRefresh = null)
    {
        TestDatabase db;
        if (backend == PersistenceBackend.Sqlite)
        {
            var dir = Path.Combine(Path.GetTempPath(), "orch-devices-" + Guid.NewGuid().ToString("N"));
            db = new TestDatabase(DevicePersistenceOptions.Sqlite(Path.Combine(dir, "devices.db")), dir);
        }
        else
        {
            var cs = PostgresGate.RequiredConnectionString();
            db = new TestDatabase(DevicePersistenceOptions.PostgreSql(cs, "t_" + Guid.NewGuid().ToString("N")[..20]), null);
        }
        db.Options = db.Options with { QueryRefreshInterval = queryRefresh ?? TimeSpan.FromMilliseconds(100) };
        await db.Options.PrepareDatabase();
        return db;
    }

    /// <summary>Runs a scalar query (table names unqualified; the PostgreSQL schema is put on the search path).</summary>
    public async Task<long> Scalar(string sql)
    {
        await using var c = Open();
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = Options.Schema is null ? sql : $"SET search_path TO \"{Options.Schema}\"; {sql}";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    /// <summary>First column of every row of <paramref name="sql"/> as strings (null for NULL).</summary>
    public async Task<List<string?>> Strings(string sql)
    {
        await using var c = Open();
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = Options.Schema is null ? sql : $"SET search_path TO \"{Options.Schema}\"; {sql}";
        var list = new List<string?>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add(r.IsDBNull(0) ? null : r.GetString(0));
        return list;
    }

    /// <summary>Runs statements (table names unqualified, as in <see cref="Scalar"/>).</summary>
    public async Task Execute(string sql)
    {
        await using var c = Open();
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = Options.Schema is null ? sql : $"SET search_path TO \"{Options.Schema}\"; {sql}";
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// The <c>journal</c> and <c>tags</c> tables as the database describes them (SQLite: their stored CREATE statements;
    /// PostgreSQL: columns with types, nullability and identity, constraints and index definitions), for comparing
    /// the DDL of two databases.
    /// </summary>
    public async Task<string> DescribeJournalSchema()
    {
        var sql = Options.Backend == PersistenceBackend.Sqlite
            ? "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master WHERE tbl_name IN ('journal', 'tags') ORDER BY name"
            : $"""
              SELECT table_name || '.' || column_name || ' #' || ordinal_position || ' ' || data_type || ' null=' || is_nullable || ' identity=' || is_identity || COALESCE(' ' || identity_generation, '')
                FROM information_schema.columns WHERE table_schema = '{Options.Schema}' AND table_name IN ('journal', 'tags')
              UNION ALL
              SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid IN ('"{Options.Schema}".journal'::regclass, '"{Options.Schema}".tags'::regclass)
              UNION ALL
              SELECT 'index ' || indexname || ' ' || replace(indexdef, '{Options.Schema}.', '') FROM pg_indexes WHERE schemaname = '{Options.Schema}' AND tablename IN ('journal', 'tags')
              ORDER BY 1
              """;
        await using var c = Open();
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        var lines = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) lines.Add(r.GetString(0));
        return string.Join("\n", lines);
    }

    private DbConnection Open() => Options.Backend == PersistenceBackend.Sqlite
        ? new SqliteConnection(Options.ConnectionString)
        : new NpgsqlConnection(Options.ConnectionString);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_tempDir is not null)
        {
            SqliteConnection.ClearAllPools();
            try { Directory.Delete(_tempDir, recursive: true); } catch (IOException) { /* best effort: temp dir */ }
        }
        else if (Options.Schema is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await using var c = new NpgsqlConnection(Options.ConnectionString);
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"DROP SCHEMA IF EXISTS \"{Options.Schema}\" CASCADE";
            await cmd.ExecuteNonQueryAsync();
        }
    }
}
