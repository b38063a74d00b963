using Akka.Persistence.Sql;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// The Akka.Persistence.Sql schema <see cref="DeviceJournal"/> writes. The journal copies the plugin's tables and rows
/// (the plugin's read journal and snapshot store read them), so it is correct only for the plugin version whose DDL and
/// row layout it copies: at start it refuses a different plugin assembly and existing tables whose columns are not
/// that version's, before it creates or changes anything.
/// </summary>
public static class JournalSchema
{
    /// <summary>The Akka.Persistence.Sql version whose schema the journal writes (major.minor.build).</summary>
    public static Version BuiltFor { get; } = new(1, 5, 73);

    /// <summary>The Akka.Persistence.Sql assembly this process loaded.</summary>
    public static Version LoadedPluginVersion => typeof(SqlPersistence).Assembly.GetName().Version ?? new Version(0, 0);

    /// <summary>
    /// Columns of the tables the journal writes, as the plugin's default mapping creates them (journal's <c>tags</c> is the
    /// Csv column the journal adds to tables the plugin created in TagTable mode, see <see cref="JournalStore.CsvTags"/>).
    /// </summary>
    internal static IReadOnlyDictionary<string, string[]> Columns { get; } = new Dictionary<string, string[]>
    {
        ["journal"] = ["ordering", "created", "deleted", "persistence_id", "sequence_number", "message", "manifest", "identifier", "writer_uuid", "tags"],
        ["tags"] = ["ordering_id", "tag", "sequence_nr", "persistence_id"],
    };

    /// <summary>The one column an existing journal table may lack: the journal adds it (and fills it from the tag rows) at start.</summary>
    internal const string AddedAtStart = "tags";

    /// <summary>
    /// Throws <see cref="JournalSchemaException"/> when <paramref name="loadedPlugin"/> is not <see cref="BuiltFor"/> or an
    /// existing table of <paramref name="existingColumns"/> (table name to its column names; absent tables are simply not
    /// in it) differs from <see cref="Columns"/>.
    /// </summary>
    /// <param name="loadedPlugin">The loaded Akka.Persistence.Sql version (<see cref="LoadedPluginVersion"/>).</param>
    /// <param name="existingColumns">Columns of the journal's tables that exist in the database.</param>
    /// <param name="database">The database, for the message (file path or server/schema).</param>
    public static void Verify(Version loadedPlugin, IReadOnlyDictionary<string, IReadOnlyCollection<string>> existingColumns, string database)
    {
        ArgumentNullException.ThrowIfNull(loadedPlugin);
        ArgumentNullException.ThrowIfNull(existingColumns);
        if (loadedPlugin.Major != BuiltFor.Major || loadedPlugin.Minor != BuiltFor.Minor || loadedPlugin.Build != BuiltFor.Build)
            throw new JournalSchemaException(
                $"The device journal writes Akka.Persistence.Sql {BuiltFor.ToString(3)}'s tables, but Akka.Persistence.Sql {loadedPlugin.ToString(3)} is loaded; " +
                $"its read journal and snapshot store may expect another schema. Fix: pin Akka.Persistence.Sql to {BuiltFor.ToString(3)} in Directory.Packages.props, " +
                "or compare the new version's DDL with SqliteJournalStore/PostgresJournalStore, update them and JournalSchema.BuiltFor, and run the DeviceActors tests.");
        var problems = new List<string>();
        foreach (var (table, expected) in Columns)
        {
            if (!existingColumns.TryGetValue(table, out var actual)) continue;
            var have = new HashSet<string>(actual, StringComparer.OrdinalIgnoreCase);
            var missing = expected.Where(c => !have.Contains(c) && !(table == "journal" && c == AddedAtStart)).ToList();
            var unexpected = actual.Where(c => !expected.Contains(c, StringComparer.OrdinalIgnoreCase)).ToList();
            if (missing.Count > 0) problems.Add($"table '{table}' lacks column(s) {string.Join(", ", missing)}");
            if (unexpected.Count > 0) problems.Add($"table '{table}' has column(s) {string.Join(", ", unexpected)} this version does not write");
        }
        if (problems.Count > 0)
            throw new JournalSchemaException(
                $"The device journal in {database} does not have Akka.Persistence.Sql {BuiltFor.ToString(3)}'s schema: {string.Join("; ", problems)}. " +
                "Nothing was changed. Fix: point the node at the database this version wrote (Node:DataDirectory or Database:ConnectionString), " +
                $"or migrate those tables to the {BuiltFor.ToString(3)} columns ({string.Join("; ", Columns.Select(t => $"{t.Key}: {string.Join(", ", t.Value)}"))}).");
    }
}

/// <summary>The device journal's tables or the loaded Akka.Persistence.Sql are not the schema the journal was built for; the node does not start.</summary>
public sealed class JournalSchemaException : InvalidOperationException
{
    /// <summary>Creates the exception with its operator-facing message (cause and fix).</summary>
    /// <param name="message">What differs and how to fix it.</param>
    public JournalSchemaException(string message) : base(message) { }
}
