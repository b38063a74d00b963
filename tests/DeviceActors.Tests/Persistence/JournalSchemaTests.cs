using Orchestrator.DeviceActors.Persistence.Journal;

namespace Orchestrator.DeviceActors.Tests.Persistence;

/// <summary>
/// <see cref="JournalSchema"/>: the journal copies one Akka.Persistence.Sql version's tables, so another plugin version
/// is refused with the fix named (the table checks against real databases are in DeviceJournalSuite).
/// </summary>
public sealed class JournalSchemaTests
{
    private static readonly Dictionary<string, IReadOnlyCollection<string>> NoTables = [];

    [Fact]
    public void The_loaded_plugin_is_the_version_the_journal_copies()
    {
        // Fails when Akka.Persistence.Sql is bumped without re-checking its DDL against the journal's.
        Assert.Equal(JournalSchema.BuiltFor.ToString(3), JournalSchema.LoadedPluginVersion.ToString(3));
        JournalSchema.Verify(JournalSchema.LoadedPluginVersion, NoTables, "db");
    }

    [Theory]
    [InlineData(1, 5, 74)]
    [InlineData(1, 5, 72)]
    [InlineData(1, 6, 0)]
    public void Another_plugin_version_is_refused_naming_both_versions_and_the_fix(int major, int minor, int build)
    {
        var ex = Assert.Throws<JournalSchemaException>(() => JournalSchema.Verify(new Version(major, minor, build, 0), NoTables, "db"));
        Assert.Contains($"Akka.Persistence.Sql {major}.{minor}.{build} is loaded", ex.Message);
        Assert.Contains($"writes Akka.Persistence.Sql {JournalSchema.BuiltFor.ToString(3)}'s tables", ex.Message);
        Assert.Contains("Directory.Packages.props", ex.Message);
    }

    [Fact]
    public void Tables_the_plugin_created_in_tag_table_mode_pass_without_the_tags_column_the_journal_adds()
    {
        var pluginTables = new Dictionary<string, IReadOnlyCollection<string>>
        {
            ["journal"] = ["ordering", "created", "deleted", "persistence_id", "sequence_number", "message", "manifest", "identifier", "writer_uuid"],
            ["tags"] = ["ordering_id", "tag", "sequence_nr", "persistence_id"],
        };
        JournalSchema.Verify(JournalSchema.BuiltFor, pluginTables, "db");
    }

    [Fact]
    public void Columns_of_another_schema_are_each_named()
    {
        var tables = new Dictionary<string, IReadOnlyCollection<string>>
        {
            ["journal"] = ["ordering", "created", "deleted", "persistence_id", "sequence_number", "message", "manifest", "identifier", "tags", "event_manifest"],
            ["tags"] = ["ordering_id", "tag", "persistence_id"],
        };
        var ex = Assert.Throws<JournalSchemaException>(() => JournalSchema.Verify(JournalSchema.BuiltFor, tables, "SQLite file /x/devices.db"));
        Assert.Contains("SQLite file /x/devices.db", ex.Message);
        Assert.Contains("table 'journal' lacks column(s) writer_uuid", ex.Message);
        Assert.Contains("table 'journal' has column(s) event_manifest this version does not write", ex.Message);
        Assert.Contains("table 'tags' lacks column(s) sequence_nr", ex.Message);
        Assert.Contains("Nothing was changed", ex.Message);
    }
}
