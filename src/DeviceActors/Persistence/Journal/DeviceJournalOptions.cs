using System.Text;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence.Hosting;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// Akka.Persistence.Hosting options of <see cref="DeviceJournal"/> (plugin id <see cref="DeviceJournal.PluginId"/>, the
/// default journal): the keys its constructor reads, from <see cref="DevicePersistenceOptions"/>. Event adapters are
/// added through <see cref="JournalOptions.Adapters"/> by <c>AddDevicePersistence</c>.
/// </summary>
public sealed class DeviceJournalOptions : JournalOptions
{
    /// <summary>Options for <paramref name="database"/>.</summary>
    /// <param name="database">Database settings.</param>
    public DeviceJournalOptions(DevicePersistenceOptions database) : base(true)
    {
        Database = database ?? throw new ArgumentNullException(nameof(database));
        Identifier = "device";
    }

    /// <summary>Database settings the journal writes with.</summary>
    public DevicePersistenceOptions Database { get; }

    /// <inheritdoc />
    public override string Identifier { get; set; }

    /// <inheritdoc />
    protected override Config InternalDefaultConfig => Config.Empty;

    /// <inheritdoc />
    protected override StringBuilder Build(StringBuilder sb)
    {
        sb.AppendLine($"class = {typeof(DeviceJournal).AssemblyQualifiedName!.Split(", Version")[0].ToHocon()}");
        sb.AppendLine("plugin-dispatcher = \"akka.actor.default-dispatcher\"");
        sb.AppendLine($"backend = {(Database.Backend == PersistenceBackend.Sqlite ? "sqlite" : "postgresql")}");
        sb.AppendLine($"connection-string = {Database.ConnectionString.ToHocon()}");
        sb.AppendLine($"schema = {(Database.Schema is { } schema ? schema.ToHocon() : "null")}");
        sb.AppendLine(FormattableString.Invariant($"batch-size = {Database.BatchSize}"));
        sb.AppendLine(FormattableString.Invariant($"parallelism = {Database.Parallelism}"));
        return base.Build(sb);
    }
}
