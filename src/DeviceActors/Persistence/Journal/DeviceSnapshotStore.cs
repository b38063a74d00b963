using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Sql.Snapshot;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// Snapshot store of the device actors: Akka.Persistence.Sql's store (its tables, saves and deletes unchanged) whose
/// recovery read — the latest snapshot of one actor — is one plain statement through <see cref="JournalStore"/>
/// instead of the plugin's LINQ query. Every device actor that starts reads it once, so after a node restart it is
/// read once per device, and the plugin's query cost more CPU than the rest of the recovery together (query building,
/// and compiled delegates left for the finalizer; bench/results/fleet-steady.md). Other selections (by time or
/// sequence number) stay the plugin's.
/// </summary>
/// <remarks>Config keys besides the plugin's: <c>device-backend</c> (<c>sqlite</c> or <c>postgresql</c>) and
/// <c>device-schema</c> (PostgreSQL, empty for the default), set by <see cref="Hosting.DevicePersistenceHosting"/>.</remarks>
public sealed class DeviceSnapshotStore : SqlSnapshotStore
{
    private readonly JournalStore _store;
    private readonly Akka.Serialization.Serialization _serialization;

    /// <summary>Created by Akka.Persistence with the plugin's config section.</summary>
    /// <param name="config">The section of <c>akka.persistence.snapshot-store.sql</c>.</param>
    public DeviceSnapshotStore(Config config) : base(config)
    {
        var connectionString = config.GetString("connection-string");
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new ConfigurationException("akka.persistence.snapshot-store.sql.connection-string is empty: set it (AddDevicePersistence does).");
        _store = JournalStore.Create(config.GetString("device-backend"), connectionString, config.GetString("device-schema"));
        _serialization = Context.System.Serialization;
    }

    /// <inheritdoc />
    protected override async Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken)
    {
        if (criteria.MaxSequenceNr != long.MaxValue || criteria.MaxTimeStamp != DateTime.MaxValue || criteria.MinSequenceNr > 0)
            return await base.LoadAsync(persistenceId, criteria, cancellationToken);
        var row = await _store.LatestSnapshot(persistenceId, cancellationToken);
        if (row is null) return null;
        // The plugin's reading of a row: serializer id and manifest; the type name for rows without a serializer id.
        var payload = row.SerializerId is { } id
            ? _serialization.Deserialize(row.Snapshot, id, row.Manifest ?? string.Empty)
            : FromTypeName(row);
        return new SelectedSnapshot(new SnapshotMetadata(row.PersistenceId, row.SequenceNr, new DateTime(row.Created)), payload);
    }

    private object FromTypeName(StoredSnapshotRow row)
    {
        var type = Type.GetType(row.Manifest ?? "", throwOnError: true)!;
        var serializer = _serialization.FindSerializerForType(type);
        return Akka.Serialization.Serialization.WithTransport(_serialization.System, (serializer, row.Snapshot, type), s => s.serializer.FromBinary(s.Snapshot, s.type));
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        _ = _store.DisposeAsync().AsTask();
        base.PostStop();
    }
}
