using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Storage;

/// <summary>
/// The node's relational database: SQLite file in the data directory by default, PostgreSQL when configured.
/// Statements use <c>@name</c> parameters, which both providers accept; <see cref="BlobType"/> covers the one
/// type that differs.
/// </summary>
public sealed class NodeDatabase : IAsyncDisposable
{
    private readonly NpgsqlDataSource? _postgres;
    private readonly string? _sqliteConnectionString;

    /// <summary>Opens (does not yet connect) the configured database.</summary>
    public NodeDatabase(DatabaseOptions options, string dataDirectory)
    {
        if (options.Provider == "postgresql")
        {
            _postgres = NpgsqlDataSource.Create(options.ConnectionString!);
            IsPostgres = true;
        }
        else
        {
            var cs = options.ConnectionString;
            if (string.IsNullOrWhiteSpace(cs))
            {
                Directory.CreateDirectory(dataDirectory);
                cs = new SqliteConnectionStringBuilder
                {
                    DataSource = Path.Combine(Path.GetFullPath(dataDirectory), "orchestrator.db"),
                    Pooling = true,
                }.ToString();
            }
            _sqliteConnectionString = cs;
        }
    }

    /// <summary>True for PostgreSQL, false for SQLite.</summary>
    public bool IsPostgres { get; }

    /// <summary>Column type for binary data.</summary>
    public string BlobType => IsPostgres ? "bytea" : "BLOB";

    /// <summary>An open connection; dispose it after use.</summary>
    public async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        if (_postgres is not null) return await _postgres.OpenConnectionAsync(ct).ConfigureAwait(false);
        var c = new SqliteConnection(_sqliteConnectionString);
        await c.OpenAsync(ct).ConfigureAwait(false);
        // WAL lets readers proceed while a writer commits; busy_timeout rides out short lock contention.
        await using var pragma = c.CreateCommand();
        pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA synchronous=FULL;";
        await pragma.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        return c;
    }

    /// <summary>Creates a command with parameters given as (name, value) pairs.</summary>
    public static DbCommand Command(DbConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    /// <summary>True when a trivial query succeeds (readiness).</summary>
    public async Task<bool> PingAsync(CancellationToken ct)
    {
        try
        {
            await using var c = await OpenAsync(ct).ConfigureAwait(false);
            await using var cmd = Command(c, "SELECT 1");
            await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null) await _postgres.DisposeAsync().ConfigureAwait(false);
    }
}
