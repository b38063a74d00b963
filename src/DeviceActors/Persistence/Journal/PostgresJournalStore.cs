using Npgsql;
using NpgsqlTypes;
using Orchestrator.Messages.Storage;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// PostgreSQL backend of <see cref="DeviceJournal"/>. Each writer holds one connection and one prepared statement
/// that writes a whole batch in a single round trip: the journal rows arrive as arrays, are inserted with
/// <c>INSERT ... SELECT FROM unnest(...) RETURNING ordering</c>, and the tag rows are inserted from that result in
/// the same statement (a data-modifying CTE), so one batch is one implicit transaction. Several writers
/// (<c>parallelism</c>) run side by side, as the plugin's do.
/// </summary>
internal sealed class PostgresJournalStore : JournalStore
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _journal;
    private readonly string _tags;
    private readonly string _tagOrderingIndex;
    private readonly string _snapshot;
    private readonly string? _schema;

    /// <inheritdoc />
    public override bool IsTransient(Exception error) => error is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };

    public PostgresJournalStore(string connectionString, string? schema)
    {
        // Recovery runs the same two queries once per actor: let Npgsql prepare them on each pooled connection.
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        if (csb.MaxAutoPrepare == 0) csb.MaxAutoPrepare = 16;
        _dataSource = NpgsqlDataSource.Create(csb.ConnectionString);
        _schema = schema;
        var prefix = schema is null ? "" : $"\"{schema}\".";
        _journal = prefix + "journal";
        _tags = prefix + "tags";
        _tagOrderingIndex = prefix + TagOrderingIndex;
        _snapshot = prefix + "snapshot";
    }

    /// <inheritdoc />
    public override async Task EnsureTables(CancellationToken ct)
    {
        // The plugin's tables as linq2db creates them for PostgreSQL.15 (compared with pg_dump of a plugin-created
        // schema: identity ordering, PK_journal, journal_uq as a unique constraint, PK_tags and the four indexes).
        // Index names are unqualified: PostgreSQL creates an index in its table's schema.
        await using var c = await _dataSource.OpenConnectionAsync(ct);
        await using (var columns = c.CreateCommand())
        {
            columns.CommandText = "SELECT table_name, column_name FROM information_schema.columns " +
                                  $"WHERE table_schema = {(_schema is null ? "current_schema()" : $"'{_schema}'")} AND table_name IN ('journal', 'tags')";
            // Complete tables get no DDL: even CREATE INDEX IF NOT EXISTS takes a share lock on its table, which blocks and
            // can deadlock the other nodes' journal writes whenever a node or a journal restarts.
            if (await VerifySchema(columns, $"PostgreSQL database {c.Database} (schema {_schema ?? "public"}) on {c.Host}:{c.Port}", ct))
                return;
        }
        await using var cmd = c.CreateCommand();
        // A node that finds a table missing creates it with its indexes under the lock; one that comes after finds it
        // and touches nothing (no share lock on a table other nodes already write).
        cmd.CommandText = PostgresSchemaLock.Prefix + (_schema is null ? "" : $"CREATE SCHEMA IF NOT EXISTS \"{_schema}\"; ") + $"""
            DO $$
            BEGIN
              IF to_regclass('{_journal}') IS NULL THEN
                CREATE TABLE {_journal}
                (
                    ordering        bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
                    created         bigint  NOT NULL,
                    deleted         boolean NOT NULL,
                    persistence_id  text    NOT NULL,
                    sequence_number bigint  NOT NULL,
                    message         bytea   NOT NULL,
                    manifest        text        NULL,
                    identifier      integer     NULL,
                    writer_uuid     text        NULL,
                    CONSTRAINT "PK_journal" PRIMARY KEY (ordering),
                    CONSTRAINT journal_uq UNIQUE (persistence_id, sequence_number)
                );
                CREATE INDEX journal_created_idx ON {_journal} (created);
                CREATE INDEX journal_sequence_number_idx ON {_journal} (sequence_number);
              END IF;
              IF to_regclass('{_tags}') IS NULL THEN
                CREATE TABLE {_tags}
                (
                    ordering_id    bigint NOT NULL,
                    tag            text   NOT NULL,
                    sequence_nr    bigint NOT NULL,
                    persistence_id text   NOT NULL,
                    CONSTRAINT "PK_tags" PRIMARY KEY (ordering_id, tag)
                );
                CREATE INDEX tags_persistence_id_sequence_nr_idx ON {_tags} (persistence_id, sequence_nr);
                CREATE INDEX tags_tag_idx ON {_tags} (tag);
              END IF;
              -- Tables the plugin created lack the index EventsByTag reads by.
              IF to_regclass('{_tagOrderingIndex}') IS NULL THEN
                CREATE INDEX {TagOrderingIndex} ON {_tags} (tag, ordering_id);
              END IF;
            END $$;
            """;
        await cmd.ExecuteNonQueryAsync(ct);
        // Tables from the plugin (TagTable mode) or an earlier version of this journal: add the Csv tags column (see
        // CsvTags) and fill it from the tag rows, once. The advisory lock above is per statement, so take it again.
        cmd.CommandText = PostgresSchemaLock.Prefix + $"""
            DO $$
            BEGIN
              IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = {(_schema is null ? "current_schema()" : $"'{_schema}'")} AND table_name = 'journal' AND column_name = 'tags') THEN
                ALTER TABLE {_journal} ADD COLUMN tags text NULL;
                UPDATE {_journal} j SET tags = ';' || (SELECT string_agg(t.tag, ';' ORDER BY t.tag) FROM {_tags} t WHERE t.ordering_id = j.ordering) || ';'
                WHERE EXISTS (SELECT 1 FROM {_tags} t WHERE t.ordering_id = j.ordering);
              END IF;
            END $$;
            """;
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <inheritdoc />
    public override IJournalBatchWriter CreateWriter() => new Writer(this);

    /// <inheritdoc />
    public override async Task<long> ReadHighestSequenceNr(string persistenceId, long fromSequenceNr, CancellationToken ct)
    {
        await using var cmd = _dataSource.CreateCommand($"SELECT MAX(sequence_number) FROM {_journal} WHERE persistence_id = $1 AND sequence_number > $2");
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = persistenceId });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromSequenceNr });
        return await cmd.ExecuteScalarAsync(ct) is long max ? max : 0;
    }

    /// <inheritdoc />
    public override async Task<HashSet<string>> Journaled(IReadOnlyCollection<string> persistenceIds, CancellationToken ct)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        await using var cmd = _dataSource.CreateCommand($"SELECT DISTINCT persistence_id FROM {_journal} WHERE persistence_id = ANY($1)");
        cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = persistenceIds.ToArray() });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) found.Add(r.GetString(0));
        return found;
    }

    // Reads the columns of RowColumns, in order.
    private static StoredJournalRow Row(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetInt64(1), r.GetBoolean(2), r.GetString(3), r.GetInt64(4), r.GetFieldValue<byte[]>(5),
        r.IsDBNull(6) ? null : r.GetString(6), r.IsDBNull(7) ? null : r.GetInt32(7), r.IsDBNull(8) ? null : r.GetString(8));

    /// <inheritdoc />
    public override async Task RowsFrom(string persistenceId, long fromSequenceNr, Action<StoredJournalRow> onRow, CancellationToken ct)
    {
        await using var cmd = _dataSource.CreateCommand($"""
            SELECT {RowColumns}
            FROM {_journal}
            WHERE persistence_id = $1 AND sequence_number >= $2
            ORDER BY sequence_number
            """);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = persistenceId });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromSequenceNr });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            onRow(Row(r));
        }
    }

    /// <inheritdoc />
    public override async Task<StoredSnapshotRow?> LatestSnapshot(string persistenceId, CancellationToken ct)
    {
        await using var cmd = _dataSource.CreateCommand("SELECT persistence_id, sequence_number, created, snapshot, manifest, serializer_id " +
                                                        $"FROM {_snapshot} WHERE persistence_id = $1 ORDER BY sequence_number DESC LIMIT 1");
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = persistenceId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        return new StoredSnapshotRow(r.GetString(0), r.GetInt64(1), r.GetInt64(2), (byte[])r.GetValue(3),
            r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetInt32(5));
    }

    /// <inheritdoc />
    public override async Task Replay(string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<StoredJournalRow> onRow, CancellationToken ct)
    {
        await using var cmd = _dataSource.CreateCommand($"""
            SELECT {RowColumns}
            FROM {_journal}
            WHERE persistence_id = $1 AND sequence_number >= $2 AND sequence_number <= $3 AND deleted = false
            ORDER BY sequence_number
            LIMIT $4
            """);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = persistenceId });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromSequenceNr });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = toSequenceNr });
        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = max });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            onRow(Row(r));
        }
    }

    /// <inheritdoc />
    public override async Task DeleteTo(string persistenceId, long toSequenceNr, CancellationToken ct)
    {
        await using var c = await _dataSource.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var batch = new NpgsqlBatch(c, tx)
        {
            BatchCommands =
            {
                Command($"UPDATE {_journal} SET deleted = true WHERE persistence_id = $1 AND sequence_number <= $2", persistenceId, toSequenceNr),
                Command($"""
                    DELETE FROM {_journal} WHERE persistence_id = $1 AND sequence_number <= $2
                      AND sequence_number < (SELECT MAX(sequence_number) FROM {_journal} WHERE persistence_id = $1 AND deleted = true)
                    """, persistenceId, toSequenceNr),
                Command($"DELETE FROM {_tags} WHERE persistence_id = $1 AND sequence_nr <= $2", persistenceId, toSequenceNr),
            },
        };
        await batch.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);

        static NpgsqlBatchCommand Command(string sql, string pid, long to) => new(sql)
        {
            Parameters = { new NpgsqlParameter<string> { TypedValue = pid }, new NpgsqlParameter<long> { TypedValue = to } },
        };
    }

    /// <summary>One writer: a dedicated connection and the batch statement, prepared once on it.</summary>
    private sealed class Writer(PostgresJournalStore store) : IJournalBatchWriter
    {
        private NpgsqlConnection? _connection;
        private NpgsqlCommand _insert = null!;

        public async Task Write(IReadOnlyList<PendingWrite> batch, CancellationToken ct)
        {
            var c = _connection ??= await Connect(ct);
            var rows = 0;
            var tags = 0;
            foreach (var w in batch)
            {
                rows += w.Rows.Length;
                foreach (var r in w.Rows) tags += r.Tags.Length;
            }
            var created = new long[rows];
            var pids = new string[rows];
            var seqs = new long[rows];
            var messages = new byte[rows][];
            var manifests = new string[rows];
            var identifiers = new int[rows];
            var writers = new string[rows];
            var csvTags = new string?[rows];
            var tagPids = new string[tags];
            var tagSeqs = new long[tags];
            var tagValues = new string[tags];
            int i = 0, t = 0;
            foreach (var w in batch)
            {
                foreach (var r in w.Rows)
                {
                    created[i] = r.Created;
                    pids[i] = r.PersistenceId;
                    seqs[i] = r.SequenceNr;
                    messages[i] = r.Message;
                    manifests[i] = r.Manifest;
                    identifiers[i] = r.Identifier;
                    writers[i] = r.WriterUuid;
                    csvTags[i] = r.CsvTags;
                    i++;
                    foreach (var tag in r.Tags)
                    {
                        tagPids[t] = r.PersistenceId;
                        tagSeqs[t] = r.SequenceNr;
                        tagValues[t] = tag;
                        t++;
                    }
                }
            }
            var p = _insert.Parameters;
            p[0].Value = created;
            p[1].Value = pids;
            p[2].Value = seqs;
            p[3].Value = messages;
            p[4].Value = manifests;
            p[5].Value = identifiers;
            p[6].Value = writers;
            p[7].Value = tagPids;
            p[8].Value = tagSeqs;
            p[9].Value = tagValues;
            p[10].Value = csvTags;
            try
            {
                await _insert.ExecuteNonQueryAsync(ct);
            }
            catch when (c.State != System.Data.ConnectionState.Open)
            {
                await DisposeAsync(); // reconnect on the next batch
                throw;
            }
        }

        private async Task<NpgsqlConnection> Connect(CancellationToken ct)
        {
            var c = await store._dataSource.OpenConnectionAsync(ct);
            // Journal rows in input order (WITH ORDINALITY + ORDER BY), so orderings follow sequence numbers within a
            // persistence id as with the plugin's row-by-row inserts; tag rows join back on (persistence_id, sequence_number),
            // unique within a batch (a duplicate fails the unique constraint anyway).
            _insert = new NpgsqlCommand($"""
                WITH input AS (
                    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::integer[], $7::text[], $11::text[])
                        WITH ORDINALITY AS i(created, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags, n)
                ), inserted AS (
                    INSERT INTO {store._journal} (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags)
                    SELECT created, false, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags FROM input ORDER BY n
                    RETURNING ordering, persistence_id, sequence_number
                )
                INSERT INTO {store._tags} (ordering_id, tag, sequence_nr, persistence_id)
                SELECT inserted.ordering, t.tag, t.sequence_nr, t.persistence_id
                FROM unnest($8::text[], $9::bigint[], $10::text[]) AS t(persistence_id, sequence_nr, tag)
                JOIN inserted ON inserted.persistence_id = t.persistence_id AND inserted.sequence_number = t.sequence_nr
                """, c);
            var p = _insert.Parameters;
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text }); // $11: Csv tags
            await _insert.PrepareAsync(ct);
            return c;
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is null) return;
            await _insert.DisposeAsync();
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    /// <summary>Closes the pooled read connections.</summary>
    public override ValueTask DisposeAsync() => _dataSource.DisposeAsync();
}
