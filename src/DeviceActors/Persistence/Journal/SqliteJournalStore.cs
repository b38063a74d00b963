using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// SQLite backend of <see cref="DeviceJournal"/>. Writes go through one writer (SQLite has one write lock per file)
/// on a dedicated connection with two prepared statements reused across batches; every batch is one
/// <c>BEGIN IMMEDIATE</c> transaction, committed with <c>synchronous = FULL</c> in WAL mode, so an acknowledged event
/// survives an OS crash (see bench/results/device-actors.md). Reads run without an explicit transaction: a single
/// SELECT in WAL mode is a read snapshot that neither takes nor waits for the write lock.
/// </summary>
/// <param name="connectionString">Microsoft.Data.Sqlite connection string of a file database.</param>
/// <param name="walLimitBytes">WAL size above which the writer forces a truncating checkpoint (see <see cref="Writer"/>).</param>
/// <param name="walCheckInterval">How often the writer looks at the WAL size (null: every 5 s).</param>
internal sealed class SqliteJournalStore(string connectionString, long walLimitBytes = SqliteJournalStore.DefaultWalLimitBytes, TimeSpan? walCheckInterval = null)
    : JournalStore
{
    /// <summary>64 MiB: large enough that checkpoints are rare under a write burst, small enough that one stays short.</summary>
    public const long DefaultWalLimitBytes = 64L * 1024 * 1024;

    // The plugin's DDL as linq2db emits it for provider SQLite.MS (checked with `.schema` on a plugin-created file),
    // made idempotent. SQLite stores it without the IF NOT EXISTS, so the schema text is the plugin's.
    private const string Ddl = $"""
        CREATE TABLE IF NOT EXISTS [journal]
        (
        	[ordering]        INTEGER        NOT NULL PRIMARY KEY AUTOINCREMENT,
        	[created]         INTEGER        NOT NULL,
        	[deleted]         Bit            NOT NULL,
        	[persistence_id]  NVarChar(255)  NOT NULL,
        	[sequence_number] INTEGER        NOT NULL,
        	[message]         VarBinary      NOT NULL,
        	[manifest]        NVarChar(500)      NULL,
        	[identifier]      INTEGER            NULL,
        	[writer_uuid]     NVarChar(128)      NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS journal_uq ON journal (persistence_id, sequence_number);
        CREATE INDEX IF NOT EXISTS journal_created_idx ON journal (created);
        CREATE INDEX IF NOT EXISTS journal_sequence_number_idx ON journal (sequence_number);
        CREATE TABLE IF NOT EXISTS [tags]
        (
        	[ordering_id]    INTEGER       NOT NULL,
        	[tag]            NVarChar(64)  NOT NULL,
        	[sequence_nr]    INTEGER       NOT NULL,
        	[persistence_id] NVarChar(255) NOT NULL,

        	CONSTRAINT [PK_tags] PRIMARY KEY ([ordering_id], [tag])
        );
        CREATE INDEX IF NOT EXISTS tags_persistence_id_sequence_nr_idx ON tags (persistence_id, sequence_nr);
        CREATE INDEX IF NOT EXISTS tags_tag_idx ON tags (tag);
        CREATE INDEX IF NOT EXISTS {TagOrderingIndex} ON tags (tag, ordering_id);
        """;

    /// <inheritdoc />
    public override async Task EnsureTables(CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using (var columns = c.CreateCommand())
        {
            columns.CommandText = "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name IN ('journal', 'tags')";
            await VerifySchema(columns, $"SQLite file {c.DataSource}", ct);
        }
        // journal_mode cannot change inside a transaction; it is persistent per file (normally already set by PrepareDatabase).
        await using (var wal = c.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            await wal.ExecuteNonQueryAsync(ct);
        }
        await using var tx = c.BeginTransaction(deferred: false);
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = Ddl;
        await cmd.ExecuteNonQueryAsync(ct);
        cmd.CommandText = "SELECT COUNT(*) FROM pragma_table_info('journal') WHERE name = 'tags'";
        if (await cmd.ExecuteScalarAsync(ct) is 0L)
        {
            // Tables from the plugin (TagTable mode) or from an earlier version of this journal: add the Csv column and
            // fill it from the tag rows, once.
            cmd.CommandText = """
                ALTER TABLE journal ADD COLUMN [tags] NVarChar(2000) NULL;
                UPDATE journal SET tags = ';' || (SELECT group_concat(t.tag, ';' ORDER BY t.tag) FROM tags t WHERE t.ordering_id = journal.ordering) || ';'
                WHERE EXISTS (SELECT 1 FROM tags t WHERE t.ordering_id = journal.ordering);
                """;
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    /// <inheritdoc />
    public override IJournalBatchWriter CreateWriter() => new Writer(connectionString, walLimitBytes, walCheckInterval ?? TimeSpan.FromSeconds(5));

    /// <inheritdoc />
    public override async Task<long> ReadHighestSequenceNr(string persistenceId, long fromSequenceNr, CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT MAX(sequence_number) FROM journal WHERE persistence_id = $p AND sequence_number > $from";
        cmd.Parameters.Add("$p", SqliteType.Text).Value = persistenceId;
        cmd.Parameters.Add("$from", SqliteType.Integer).Value = fromSequenceNr;
        return await cmd.ExecuteScalarAsync(ct) is long max ? max : 0;
    }

    /// <summary>Ids per statement: well under SQLite's host-parameter limit (32,766).</summary>
    private const int JournaledChunk = 500;

    /// <inheritdoc />
    public override async Task<HashSet<string>> Journaled(IReadOnlyCollection<string> persistenceIds, CancellationToken ct)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        await using var c = await Open(ct);
        foreach (var chunk in persistenceIds.Chunk(JournaledChunk))
        {
            await using var cmd = c.CreateCommand();
            var names = new StringBuilder();
            for (var i = 0; i < chunk.Length; i++)
            {
                names.Append(i == 0 ? "$p0" : $", $p{i}");
                cmd.Parameters.Add($"$p{i}", SqliteType.Text).Value = chunk[i];
            }
            // Uses journal_uq (persistence_id, sequence_number): one index probe per id.
            cmd.CommandText = $"SELECT DISTINCT persistence_id FROM journal WHERE persistence_id IN ({names})";
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) found.Add(r.GetString(0));
        }
        return found;
    }

    /// <inheritdoc />
    public override async Task Replay(string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<StoredJournalRow> onRow, CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT {RowColumns}
            FROM journal
            WHERE persistence_id = $p AND sequence_number >= $from AND sequence_number <= $to AND deleted = 0
            ORDER BY sequence_number
            LIMIT $max
            """;
        cmd.Parameters.Add("$p", SqliteType.Text).Value = persistenceId;
        cmd.Parameters.Add("$from", SqliteType.Integer).Value = fromSequenceNr;
        cmd.Parameters.Add("$to", SqliteType.Integer).Value = toSequenceNr;
        cmd.Parameters.Add("$max", SqliteType.Integer).Value = max;
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            onRow(Row(r));
        }
    }

    // Reads the columns of RowColumns, in order.
    private static StoredJournalRow Row(SqliteDataReader r) => new(
        r.GetInt64(0), r.GetInt64(1), r.GetInt64(2) != 0, r.GetString(3), r.GetInt64(4), (byte[])r.GetValue(5),
        r.IsDBNull(6) ? null : r.GetString(6), r.IsDBNull(7) ? null : r.GetInt32(7), r.IsDBNull(8) ? null : r.GetString(8));

    /// <inheritdoc />
    public override async Task RowsFrom(string persistenceId, long fromSequenceNr, Action<StoredJournalRow> onRow, CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT {RowColumns}
            FROM journal
            WHERE persistence_id = $p AND sequence_number >= $from
            ORDER BY sequence_number
            """;
        cmd.Parameters.Add("$p", SqliteType.Text).Value = persistenceId;
        cmd.Parameters.Add("$from", SqliteType.Integer).Value = fromSequenceNr;
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            onRow(Row(r));
        }
    }

    /// <inheritdoc />
    public override async Task<StoredSnapshotRow?> LatestSnapshot(string persistenceId, CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT persistence_id, sequence_number, created, snapshot, manifest, serializer_id " +
                          "FROM snapshot WHERE persistence_id = $p ORDER BY sequence_number DESC LIMIT 1";
        cmd.Parameters.Add("$p", SqliteType.Text).Value = persistenceId;
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        return new StoredSnapshotRow(r.GetString(0), r.GetInt64(1), r.GetInt64(2), (byte[])r.GetValue(3),
            r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetInt32(5));
    }

    /// <inheritdoc />
    public override async Task DeleteTo(string persistenceId, long toSequenceNr, CancellationToken ct)
    {
        await using var c = await Open(ct);
        await using var tx = c.BeginTransaction(deferred: false);
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            UPDATE journal SET deleted = 1 WHERE persistence_id = $p AND sequence_number <= $to;
            DELETE FROM journal WHERE persistence_id = $p AND sequence_number <= $to
              AND sequence_number < (SELECT MAX(sequence_number) FROM journal WHERE persistence_id = $p AND deleted = 1);
            DELETE FROM tags WHERE persistence_id = $p AND sequence_nr <= $to;
            """;
        cmd.Parameters.Add("$p", SqliteType.Text).Value = persistenceId;
        cmd.Parameters.Add("$to", SqliteType.Integer).Value = toSequenceNr;
        await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    private async Task<SqliteConnection> Open(CancellationToken ct)
    {
        var c = new SqliteConnection(connectionString);
        await c.OpenAsync(ct);
        return c;
    }

    /// <summary>
    /// The single writer: one connection, both INSERTs prepared once and reused for every batch. It also keeps the WAL
    /// bounded: SQLite's automatic checkpoint is PASSIVE and only restarts the WAL file when no reader is using it, and
    /// a node always has some reader (recoveries, registry polls, rollout reads), so the WAL grew without bound (16 GB
    /// in a 100k-device rollout, which on tmpfs got the process OOM-killed; bench/results/fleet.md). Past
    /// <c>walLimitBytes</c> the writer runs a TRUNCATE checkpoint between batches, at most every
    /// <c>walCheckInterval</c>. Such a checkpoint holds the write lock while it waits for older readers, so that wait is
    /// capped at <see cref="CheckpointBusyTimeoutMs"/>: a checkpoint that cannot finish in time is retried at the next
    /// check instead of stalling every actor's writes (a 2 s wait every second did, in a 100k-device rollout).
    /// </summary>
    private sealed class Writer(string connectionString, long walLimitBytes, TimeSpan walCheckInterval) : IJournalBatchWriter
    {
        private const int CheckpointBusyTimeoutMs = 100;
        private readonly string _walPath = new SqliteConnectionStringBuilder(connectionString).DataSource + "-wal";
        private long _nextWalCheck;
        private SqliteConnection? _connection;
        private RowStatements? _statements;

        public async Task Write(IReadOnlyList<PendingWrite> batch, CancellationToken ct)
        {
            var c = _connection ??= await Connect(ct);
            try
            {
                using var tx = c.BeginTransaction(deferred: false); // BEGIN IMMEDIATE: the write lock for the whole batch
                foreach (var write in batch)
                    foreach (var row in write.Rows)
                        _statements!.Insert(row);
                tx.Commit();
                CheckpointIfWalTooLarge(c);
            }
            catch when (c.State != System.Data.ConnectionState.Open)
            {
                await DisposeAsync(); // reconnect on the next batch
                throw;
            }
        }

        /// <summary>At most once per <c>walCheckInterval</c>: a TRUNCATE checkpoint when the WAL file is past the limit.</summary>
        private void CheckpointIfWalTooLarge(SqliteConnection c)
        {
            var now = Environment.TickCount64;
            if (now < _nextWalCheck) return;
            _nextWalCheck = now + (long)walCheckInterval.TotalMilliseconds;
            long size;
            try
            {
                size = new FileInfo(_walPath).Length;
            }
            catch (IOException)
            {
                return;
            }
            if (size < walLimitBytes) return;
            using var cmd = c.CreateCommand();
            // Row (busy, log frames, checkpointed frames); busy = 1 means a reader outlasted the timeout: the next check
            // tries again, and the batch it follows has committed either way.
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            cmd.ExecuteNonQuery();
        }

        private async Task<SqliteConnection> Connect(CancellationToken ct)
        {
            var c = new SqliteConnection(connectionString);
            await c.OpenAsync(ct);
            await using (var pragma = c.CreateCommand())
            {
                // FULL (the SQLite default, stated explicitly): with WAL, NORMAL could lose acknowledged commits on power loss.
                // busy_timeout: how long the TRUNCATE checkpoint (and BEGIN IMMEDIATE, before the driver's own retries) waits
                // inside SQLite for readers/writers.
                pragma.CommandText = $"PRAGMA synchronous=FULL; PRAGMA busy_timeout={CheckpointBusyTimeoutMs};";
                await pragma.ExecuteNonQueryAsync(ct);
            }
            _statements = new RowStatements(c.Handle!);
            return c;
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is null) return;
            _statements?.Dispose();
            _statements = null;
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    /// <summary>
    /// The writer's two inserts, prepared once and bound through SQLite's C API. Microsoft.Data.Sqlite allocates a
    /// binder per parameter, a boxed value and a data reader per execution: about 1.4 KB of garbage per event, which
    /// next to 100k live device actors cost more in collector pauses than the inserts themselves
    /// (bench/results/device-actors.md). Text is encoded into a reused buffer; SQLite copies what is bound.
    /// Statements run inside the ADO.NET transaction of the same connection.
    /// </summary>
    private sealed class RowStatements : IDisposable
    {
        private const string JournalSql = """
            INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags)
            VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            RETURNING ordering
            """;
        private const string TagSql = "INSERT INTO tags (ordering_id, tag, sequence_nr, persistence_id) VALUES (?1, ?2, ?3, ?4)";

        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _journal;
        private readonly sqlite3_stmt _tag;
        private byte[] _text = new byte[256];

        public RowStatements(sqlite3 db)
        {
            _db = db;
            _journal = Prepare(JournalSql);
            _tag = Prepare(TagSql);
        }

        public void Insert(JournalRowToWrite row)
        {
            try
            {
                Check(raw.sqlite3_bind_int64(_journal, 1, row.Created));
                BindText(_journal, 2, row.PersistenceId);
                Check(raw.sqlite3_bind_int64(_journal, 3, row.SequenceNr));
                // An empty span is bound as a null pointer, i.e. SQL NULL: an empty payload needs a zero-length blob.
                Check(row.Message.Length == 0 ? raw.sqlite3_bind_zeroblob(_journal, 4, 0) : raw.sqlite3_bind_blob(_journal, 4, row.Message));
                BindText(_journal, 5, row.Manifest);
                Check(raw.sqlite3_bind_int64(_journal, 6, row.Identifier));
                BindText(_journal, 7, row.WriterUuid);
                BindText(_journal, 8, row.CsvTags);
                var rc = raw.sqlite3_step(_journal);
                if (rc != raw.SQLITE_ROW) throw Error(rc);
                var ordering = raw.sqlite3_column_int64(_journal, 0);
                if ((rc = raw.sqlite3_step(_journal)) != raw.SQLITE_DONE) throw Error(rc);
                foreach (var tag in row.Tags)
                {
                    try
                    {
                        Check(raw.sqlite3_bind_int64(_tag, 1, ordering));
                        BindText(_tag, 2, tag);
                        Check(raw.sqlite3_bind_int64(_tag, 3, row.SequenceNr));
                        BindText(_tag, 4, row.PersistenceId);
                        if ((rc = raw.sqlite3_step(_tag)) != raw.SQLITE_DONE) throw Error(rc);
                    }
                    finally
                    {
                        raw.sqlite3_reset(_tag);
                    }
                }
            }
            finally
            {
                raw.sqlite3_reset(_journal);
            }
        }

        public void Dispose()
        {
            _journal.Dispose();
            _tag.Dispose();
        }

        private sqlite3_stmt Prepare(string sql)
        {
            var rc = raw.sqlite3_prepare_v2(_db, sql, out var stmt);
            if (rc != raw.SQLITE_OK) throw Error(rc);
            return stmt;
        }

        private void BindText(sqlite3_stmt stmt, int index, string? value)
        {
            if (value is null)
            {
                Check(raw.sqlite3_bind_null(stmt, index));
                return;
            }
            if (value.Length == 0)
            {
                Check(raw.sqlite3_bind_text(stmt, index, utf8z.FromString(string.Empty))); // not NULL, see the blob above
                return;
            }
            var max = Encoding.UTF8.GetMaxByteCount(value.Length);
            if (max > _text.Length) _text = new byte[Math.Max(max, _text.Length * 2)];
            var length = Encoding.UTF8.GetBytes(value, _text);
            Check(raw.sqlite3_bind_text(stmt, index, _text.AsSpan(0, length)));
        }

        private void Check(int rc)
        {
            if (rc != raw.SQLITE_OK) throw Error(rc);
        }

        private SqliteException Error(int rc) =>
            new(raw.sqlite3_errmsg(_db).utf8_to_string(), rc, raw.sqlite3_extended_errcode(_db));
    }
}
