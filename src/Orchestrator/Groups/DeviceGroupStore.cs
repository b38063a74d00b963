using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Messages.Storage;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Groups;

/// <summary>A group saved over the admin API, with who saved it and when.</summary>
/// <param name="Group">The definition.</param>
/// <param name="SavedBy">The admin token's name.</param>
/// <param name="SavedAt">When it was last saved.</param>
/// <param name="Source"><c>saved</c> (admin API) or <c>configured</c> (<c>Rollouts:Groups</c> on the node, read-only).</param>
public sealed record SavedDeviceGroup(DeviceGroup Group, string? SavedBy, DateTimeOffset? SavedAt, string Source);

/// <summary>
/// Device groups saved over the admin API, in the node database (<c>device_groups</c>) so every node of a cluster
/// resolves the same definition; next to them, the read-only groups configured under <c>Rollouts:Groups</c>. A name
/// is either configured or saved, never both, so a rollout's group always means one thing. A rollout copies the
/// definition when it is created: changing a group later never changes a running rollout.
/// </summary>
public sealed partial class DeviceGroupStore(NodeDatabase db, IConfiguration config)
{
    /// <summary>Group name grammar.</summary>
    public const string NamePattern = "^[a-z0-9][a-z0-9-]{0,62}$";

    /// <summary>Most saved groups.</summary>
    public const int MaxGroups = 10_000;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [GeneratedRegex(NamePattern, RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();

    /// <summary>True when <paramref name="name"/> matches <see cref="NamePattern"/>.</summary>
    public static bool IsValidName(string? name) => name is not null && NameRegex().IsMatch(name);

    /// <summary>What is wrong with a definition (naming the field and the fix), or null when it can be saved.</summary>
    public static (string Field, string Message)? Problem(DeviceGroup g)
    {
        if (!IsValidName(g.Name)) return ("name", $"group name '{g.Name}' must match {NamePattern} (lower-case letters, digits, '-').");
        if (g.NamesNothing()) return ("group", "the group names no device: give tags, attributes (key=value) or device ids.");
        foreach (var t in g.Tags)
            if (string.IsNullOrWhiteSpace(t) || t.Length > 128 || t.Any(char.IsWhiteSpace))
                return ("tags", $"tag '{t}' must be 1-128 characters without whitespace.");
        foreach (var id in g.DeviceIds)
            if (!DeviceIdRules.IsValid(id)) return ("deviceIds", $"device id '{id}' is invalid: it must match {DeviceIdRules.Pattern}.");
        if (g.DeviceIds.Count > 100_000) return ("deviceIds", $"{g.DeviceIds.Count} device ids; a group lists at most 100000 (use tags or attributes for more).");
        return DeviceAttributeRules.Problem("attributes", g.Attributes) is { } bad ? ("attributes", bad) : null;
    }

    /// <summary>Creates the table when missing.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        var lockDdl = db.IsPostgres ? PostgresSchemaLock.Prefix : "";
        await using var cmd = NodeDatabase.Command(c, lockDdl +
            "CREATE TABLE IF NOT EXISTS device_groups (name VARCHAR(64) PRIMARY KEY, definition TEXT NOT NULL, saved_by VARCHAR(64) NOT NULL, " +
            "saved_unix_ms BIGINT NOT NULL)");
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>True when <paramref name="name"/> is configured on the node (<c>Rollouts:Groups</c>).</summary>
    public bool IsConfigured(string name) => config.GetSection($"Rollouts:Groups:{name}").Exists();

    /// <summary>Saves (creates or replaces) <paramref name="group"/>; validate it with <see cref="Problem"/> first.</summary>
    /// <returns>True when it replaced an earlier definition.</returns>
    public async Task<bool> SaveAsync(DeviceGroup group, string savedBy, DateTimeOffset at, CancellationToken ct = default)
    {
        var normalized = group with
        {
            Tags = [.. group.Tags.Distinct(StringComparer.Ordinal)],
            DeviceIds = [.. group.DeviceIds.Distinct(StringComparer.Ordinal)],
            Attributes = group.Attributes is null or { Count: 0 } ? null : DeviceAttributeRules.Validate(group.Attributes, "attributes"),
        };
        var definition = JsonSerializer.Serialize(normalized, Json);
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var delete = NodeDatabase.Command(c, "DELETE FROM device_groups WHERE name = @n", ("@n", group.Name));
        delete.Transaction = tx;
        var replaced = await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        await using var insert = NodeDatabase.Command(c,
            "INSERT INTO device_groups (name, definition, saved_by, saved_unix_ms) VALUES (@n, @d, @by, @t)",
            ("@n", group.Name), ("@d", definition), ("@by", savedBy.Length > 64 ? savedBy[..64] : savedBy), ("@t", at.ToUnixTimeMilliseconds()));
        insert.Transaction = tx;
        await insert.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return replaced;
    }

    /// <summary>Deletes a saved group; false when there was none of that name.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "DELETE FROM device_groups WHERE name = @n", ("@n", name));
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
    }

    /// <summary>Number of saved groups.</summary>
    public async Task<long> CountAsync(CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "SELECT COUNT(*) FROM device_groups");
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    /// <summary>Every group, configured ones first, each part ordered by name.</summary>
    public async Task<IReadOnlyList<SavedDeviceGroup>> ListAsync(CancellationToken ct = default)
    {
        var all = config.GetSection("Rollouts:Groups").GetChildren().OrderBy(s => s.Key, StringComparer.Ordinal)
            .Select(section => Configured(section.Key, section)).ToList();
        all.AddRange(await SavedAsync(null, ct).ConfigureAwait(false));
        return all;
    }

    /// <summary>The group of that name, configured or saved; null when there is none.</summary>
    public async Task<SavedDeviceGroup?> FindAsync(string name, CancellationToken ct = default)
    {
        var section = config.GetSection($"Rollouts:Groups:{name}");
        if (section.Exists()) return Configured(name, section);
        return (await SavedAsync(name, ct).ConfigureAwait(false)).SingleOrDefault();
    }

    // The saved groups by name, or the one named.
    private async Task<List<SavedDeviceGroup>> SavedAsync(string? name, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = name is null
            ? NodeDatabase.Command(c, "SELECT definition, saved_by, saved_unix_ms FROM device_groups ORDER BY name")
            : NodeDatabase.Command(c, "SELECT definition, saved_by, saved_unix_ms FROM device_groups WHERE name = @n", ("@n", name));
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var rows = new List<SavedDeviceGroup>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
            rows.Add(new SavedDeviceGroup(Parse(r.GetString(0)), r.GetString(1),
                DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(r.GetValue(2), CultureInfo.InvariantCulture)), "saved"));
        return rows;
    }

    /// <summary>Resolves the named groups for a rollout selector; the problem names the first unknown group and the fix.</summary>
    public async Task<(IReadOnlyList<DeviceGroup> Groups, string? Problem)> ResolveAsync(IReadOnlyList<string> names, CancellationToken ct = default)
    {
        var groups = new List<DeviceGroup>();
        foreach (var name in names.Distinct(StringComparer.Ordinal))
        {
            if (string.IsNullOrWhiteSpace(name) || await FindAsync(name, ct).ConfigureAwait(false) is not { } found)
                return ([], $"group '{name}' does not exist; save it first (orch group save {name} --tags T --attributes K=V) or define it under " +
                    $"Rollouts:Groups:{name} on the node.");
            groups.Add(found.Group);
        }
        return (groups, null);
    }

    private static SavedDeviceGroup Configured(string name, IConfigurationSection section) =>
        new(new DeviceGroup(name, section.GetSection(nameof(RolloutGroupOptions.Tags)).Get<List<string>>() ?? [],
            section.GetSection(nameof(RolloutGroupOptions.DeviceIds)).Get<List<string>>() ?? []), null, null, "configured");

    private static DeviceGroup Parse(string json) =>
        JsonSerializer.Deserialize<DeviceGroup>(json, Json) ?? throw new InvalidDataException("device_groups holds a JSON null definition.");
}
