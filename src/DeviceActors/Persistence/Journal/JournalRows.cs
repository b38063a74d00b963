namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// One row of Akka.Persistence.Sql's <c>journal</c> table as <see cref="DeviceJournal"/> writes it (TagTable mode:
/// the tags go to the <c>tags</c> table, one row per tag, keyed by the journal row's <c>ordering</c>).
/// </summary>
/// <param name="PersistenceId">Column <c>persistence_id</c>.</param>
/// <param name="SequenceNr">Column <c>sequence_number</c>.</param>
/// <param name="Created">Column <c>created</c>: <see cref="DateTime.Ticks"/> (UTC) of the write, as the plugin stores it.</param>
/// <param name="Message">Column <c>message</c>: the payload's bytes from its Akka serializer.</param>
/// <param name="Manifest">Column <c>manifest</c>: the serializer's string manifest (or type name, or empty).</param>
/// <param name="Identifier">Column <c>identifier</c>: the serializer id.</param>
/// <param name="WriterUuid">Column <c>writer_uuid</c>: the writing journal instance.</param>
/// <param name="Tags">Rows for the <c>tags</c> table.</param>
/// <param name="Csv">The journal's <c>tags</c> column (<see cref="JournalStore.CsvTags"/> of <paramref name="Tags"/>) when the
/// caller already has it; computed by <see cref="CsvTags"/> otherwise.</param>
internal sealed record JournalRowToWrite(
    string PersistenceId, long SequenceNr, long Created, byte[] Message, string Manifest, int Identifier, string WriterUuid, string[] Tags,
    string? Csv = null)
{
    /// <summary>Column <c>tags</c>: <c>;a;b;</c>, or null without tags.</summary>
    public string? CsvTags => Csv ?? JournalStore.CsvTags(Tags);
}

/// <summary>A row of the <c>journal</c> table read back for replay.</summary>
internal sealed record StoredJournalRow(
    long Ordering, long Created, bool Deleted, string PersistenceId, long SequenceNr, byte[] Message, string? Manifest, int? Identifier, string? WriterUuid);

/// <summary>A row of Akka.Persistence.Sql's <c>snapshot</c> table (default mapping; <c>created</c> in ticks).</summary>
internal sealed record StoredSnapshotRow(string PersistenceId, long SequenceNr, long Created, byte[] Snapshot, string? Manifest, int? SerializerId);

/// <summary>
/// Rows that are committed together or not at all (one AtomicWrite, or one actor's WriteMessages), waiting for a
/// writer. <see cref="Settle"/> is called once, after the commit or with the error, on a thread-pool thread.
/// </summary>
internal abstract class PendingWrite(JournalRowToWrite[] rows)
{
    public JournalRowToWrite[] Rows { get; } = rows;

    /// <summary>The rows committed (<paramref name="error"/> null) or were not stored.</summary>
    public abstract void Settle(Exception? error);
}
