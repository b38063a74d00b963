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
internal sealed record JournalRowToWrite(
    string PersistenceId, long SequenceNr, long Created, byte[] Message, string Manifest, int Identifier, string WriterUuid, string[] Tags);

/// <summary>A row of the <c>journal</c> table read back for replay.</summary>
internal sealed record StoredJournalRow(
    long Ordering, long Created, bool Deleted, string PersistenceId, long SequenceNr, byte[] Message, string? Manifest, int? Identifier, string? WriterUuid);

/// <summary>
/// One <see cref="Akka.Persistence.AtomicWrite"/>, serialized, waiting for a writer: its rows are committed together
/// or not at all, and <see cref="Done"/> completes only after the commit.
/// </summary>
internal sealed class PendingWrite(JournalRowToWrite[] rows)
{
    public JournalRowToWrite[] Rows { get; } = rows;

    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
