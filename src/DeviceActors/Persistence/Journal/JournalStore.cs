namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// The SQL of <see cref="DeviceJournal"/> for one backend, on Akka.Persistence.Sql's default table mapping
/// (<c>journal</c>, <c>tags</c>): the same tables, columns and indexes the plugin creates, so the plugin's read
/// journal and snapshot store work on them unchanged and databases the plugin wrote stay readable.
/// </summary>
internal abstract class JournalStore : IAsyncDisposable
{
    /// <summary>The store for <paramref name="options"/>' backend.</summary>
    public static JournalStore For(DevicePersistenceOptions options) => Create(
        options.Backend == PersistenceBackend.Sqlite ? "sqlite" : "postgresql", options.ConnectionString, options.Schema);

    /// <summary>The store for a backend name from the plugin config (<c>sqlite</c> or <c>postgresql</c>).</summary>
    public static JournalStore Create(string backend, string connectionString, string? schema) => backend switch
    {
        "sqlite" => new SqliteJournalStore(connectionString),
        "postgresql" => new PostgresJournalStore(connectionString, string.IsNullOrEmpty(schema) ? null : schema),
        _ => throw new Akka.Configuration.ConfigurationException($"{DeviceJournal.PluginId}.backend is '{backend}': use 'sqlite' or 'postgresql'."),
    };

    /// <summary>
    /// The one index we add to the plugin's schema: the read journal's EventsByTag asks for one tag's rows above an
    /// ordering, and with only the plugin's <c>tags (tag)</c> index SQLite walked every row of the tag (every device
    /// event carries the same one) and sorted them on each poll, so the registry fell minutes behind at 100k devices
    /// (bench/results/fleet.md). Idempotent; harmless to the plugin, which never names it.
    /// </summary>
    public const string TagOrderingIndex = "tags_tag_ordering_idx";

    /// <summary>
    /// The journal's <c>tags</c> column as the plugin writes it in Csv/Both mode (<c>;a;b;</c>, null when untagged). We
    /// write it next to the tag rows because the read journal reads tags in Csv mode (see <c>DevicePersistenceHosting</c>):
    /// its TagTable query (linq2db 6 on SQLite and PostgreSQL) aggregates each returned row's tags with a subquery over
    /// the <em>whole</em> tags table, so every event the registry read cost a scan of all tag rows, and at 100k devices
    /// the registry fell minutes behind while that scan used both cores.
    /// </summary>
    public static string? CsvTags(string[] tags) => tags.Length == 0 ? null : ";" + string.Join(';', tags) + ";";

    /// <summary>Releases pooled connections (the writers own and close theirs).</summary>
    public virtual ValueTask DisposeAsync() => default;

    /// <summary>
    /// True when <paramref name="error"/> rolled a write transaction back for a reason a second try can clear (a deadlock
    /// victim, a serialization failure): nothing of it was stored, so the same rows may be written again.
    /// </summary>
    public virtual bool IsTransient(Exception error) => false;

    /// <summary>
    /// Runs <paramref name="tableColumns"/> (rows of table name, column name for the existing <c>journal</c> and <c>tags</c>
    /// tables) and throws <see cref="JournalSchemaException"/> unless they and the loaded plugin are the schema this journal
    /// writes (<see cref="JournalSchema.Verify"/>). Backends call it before creating or migrating anything.
    /// </summary>
    /// <returns>True when both tables exist with every column (nothing left to create or migrate).</returns>
    protected static async Task<bool> VerifySchema(System.Data.Common.DbCommand tableColumns, string database, CancellationToken ct)
    {
        var existing = new Dictionary<string, List<string>>();
        await using (var r = await tableColumns.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                (existing.TryGetValue(r.GetString(0), out var list) ? list : existing[r.GetString(0)] = []).Add(r.GetString(1));
        JournalSchema.Verify(JournalSchema.LoadedPluginVersion, existing.ToDictionary(e => e.Key, e => (IReadOnlyCollection<string>)e.Value), database);
        return JournalSchema.Columns.Keys.All(existing.ContainsKey) &&
               existing["journal"].Contains(JournalSchema.AddedAtStart, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Refuses tables of another schema (<see cref="VerifySchema"/>), then creates the tables and indexes if missing
    /// (idempotent; the plugin's DDL, see the backends).
    /// </summary>
    public abstract Task EnsureTables(CancellationToken ct);

    /// <summary>A writer with its own connection and prepared statements; one per writer loop.</summary>
    public abstract IJournalBatchWriter CreateWriter();

    /// <summary>
    /// Highest sequence number stored for <paramref name="persistenceId"/> (deleted rows included: deletion keeps the
    /// highest row so the number survives), 0 if none; with <paramref name="fromSequenceNr"/> &gt; 0 only numbers above it
    /// count, as in the plugin.
    /// </summary>
    public abstract Task<long> ReadHighestSequenceNr(string persistenceId, long fromSequenceNr, CancellationToken ct);

    /// <summary>
    /// Which of <paramref name="persistenceIds"/> have at least one journal row (deleted ones count: deletion keeps the
    /// highest row), in as few statements as the backend allows: the bulk registration writes a device's first event
    /// without its actor only when this says it has none (the unique key still guards a write that races it).
    /// </summary>
    public abstract Task<HashSet<string>> Journaled(IReadOnlyCollection<string> persistenceIds, CancellationToken ct);

    /// <summary>Rows of <paramref name="persistenceId"/> in [from, to] that are not deleted, by sequence number, at most <paramref name="max"/>.</summary>
    public abstract Task Replay(string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<StoredJournalRow> onRow, CancellationToken ct);

    /// <summary>
    /// A recovery's two reads in one: every row of <paramref name="persistenceId"/> from <paramref name="fromSequenceNr"/>
    /// on, deleted ones included, by sequence number, each given to <paramref name="onRow"/>; the caller takes the
    /// highest sequence number from the last row and replays the others (deletion keeps the highest row, marked deleted).
    /// </summary>
    public abstract Task RowsFrom(string persistenceId, long fromSequenceNr, Action<StoredJournalRow> onRow, CancellationToken ct);

    /// <summary>The columns every journal read selects, in the order the backends' row readers take them.</summary>
    protected const string RowColumns = "ordering, created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid";

    /// <summary>
    /// The newest row of <paramref name="persistenceId"/> in the plugin's <c>snapshot</c> table, null if none: the one
    /// read of a recovery from a snapshot, as one plain statement instead of the plugin's LINQ query.
    /// </summary>
    public abstract Task<StoredSnapshotRow?> LatestSnapshot(string persistenceId, CancellationToken ct);

    /// <summary>
    /// The plugin's delete: mark rows up to <paramref name="toSequenceNr"/> deleted, physically delete those below the
    /// highest marked one (so the highest sequence number survives), delete their tag rows; one transaction.
    /// </summary>
    public abstract Task DeleteTo(string persistenceId, long toSequenceNr, CancellationToken ct);
}

/// <summary>Writes batches of <see cref="PendingWrite"/>s on one dedicated connection.</summary>
internal interface IJournalBatchWriter : IAsyncDisposable
{
    /// <summary>Writes every row of <paramref name="batch"/> (journal rows, then their tag rows) in one transaction; throws if it did not commit.</summary>
    Task Write(IReadOnlyList<PendingWrite> batch, CancellationToken ct);
}
