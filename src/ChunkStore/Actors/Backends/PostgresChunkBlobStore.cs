using Orchestrator.Messages.Storage;
using System.Runtime.CompilerServices;
using Npgsql;

namespace Orchestrator.ChunkStore.Actors.Backends;

/// <summary>
/// Chunks as rows of a PostgreSQL table, for clusters whose nodes share no volume. The table is created on first
/// use. Dedup is <c>INSERT ... ON CONFLICT DO NOTHING</c>, so concurrent puts of one id from several nodes are safe.
/// </summary>
public sealed class PostgresChunkBlobStore : IChunkBlobStore, IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _table;
    private readonly SemaphoreSlim _schemaLock = new(1, 1);
    private volatile bool _schemaReady;

    /// <summary>Connects with <paramref name="connectionString"/>; <paramref name="table"/> must be a plain identifier.</summary>
    public PostgresChunkBlobStore(string connectionString, string table = "orch_chunks")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (!System.Text.RegularExpressions.Regex.IsMatch(table, @"^[a-z_][a-z0-9_]{0,62}\z"))
        {
            throw new ArgumentException($"Chunk table name '{table}' is not a plain lower-case SQL identifier; use letters, digits and '_'.", nameof(table));
        }
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _table = table;
    }

    /// <inheritdoc />
    public string Name => "postgresql";

    private async Task EnsureSchemaAsync(CancellationToken ct)
    {
        if (_schemaReady) return;
        await _schemaLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_schemaReady) return;
            await using var cmd = _dataSource.CreateCommand(
                PostgresSchemaLock.Prefix + $"CREATE TABLE IF NOT EXISTS {_table} (id char(64) PRIMARY KEY, data bytea NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())");
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            _schemaReady = true;
        }
        finally { _schemaLock.Release(); }
    }

    /// <inheritdoc />
    public async Task<byte[]?> ReadAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = _dataSource.CreateCommand($"SELECT data FROM {_table} WHERE id = $1");
        cmd.Parameters.AddWithValue(chunkId);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as byte[];
    }

    /// <inheritdoc />
    public async Task<bool> ExistsAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = _dataSource.CreateCommand($"SELECT 1 FROM {_table} WHERE id = $1");
        cmd.Parameters.AddWithValue(chunkId);
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }

    /// <inheritdoc />
    public async Task<bool> PutIfAbsentAsync(string chunkId, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = _dataSource.CreateCommand($"INSERT INTO {_table} (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING");
        cmd.Parameters.AddWithValue(chunkId);
        cmd.Parameters.AddWithValue(data.ToArray());
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string chunkId, CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = _dataSource.CreateCommand($"DELETE FROM {_table} WHERE id = $1");
        cmd.Parameters.AddWithValue(chunkId);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> ListAsync(DateTimeOffset? storedBefore = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = _dataSource.CreateCommand($"SELECT id FROM {_table} WHERE $1::timestamptz IS NULL OR stored_at < $1");
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz, Value = storedBefore.HasValue ? storedBefore.Value.UtcDateTime : DBNull.Value });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return reader.GetString(0);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();
}
