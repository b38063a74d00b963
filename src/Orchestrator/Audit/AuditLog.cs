using System.Data.Common;
using System.Globalization;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Storage;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Audit;

/// <summary>
/// The audit trail in the node database (<c>audit_log</c>), so every node of a cluster writes to and reads the same
/// one: each changing admin request with the name of the token that made it, its route, target, reason and status.
/// </summary>
public sealed class AuditLog(NodeDatabase db)
{
    /// <summary>Longest reason kept (longer ones are cut, never refused: the action already happened).</summary>
    public const int MaxReasonLength = 1024;

    /// <summary>Most entries one query returns.</summary>
    public const int MaxLimit = 10_000;

    /// <summary>Creates the table when missing.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        var id = db.IsPostgres ? "seq BIGSERIAL PRIMARY KEY" : "seq INTEGER PRIMARY KEY AUTOINCREMENT";
        var lockDdl = db.IsPostgres ? PostgresSchemaLock.Prefix : "";
        await using var cmd = NodeDatabase.Command(c, lockDdl +
            $"CREATE TABLE IF NOT EXISTS audit_log ({id}, time_unix_ms BIGINT NOT NULL, token VARCHAR(64) NOT NULL, action VARCHAR(256) NOT NULL, " +
            "target VARCHAR(512) NULL, reason VARCHAR(1024) NULL, status INT NOT NULL)");
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Appends one entry.</summary>
    public async Task AppendAsync(DateTimeOffset time, string token, string action, string? target, string? reason, int status, CancellationToken ct = default)
    {
        if (reason is { Length: > MaxReasonLength }) reason = reason[..MaxReasonLength];
        if (target is { Length: > 512 }) target = target[..512];
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c,
            "INSERT INTO audit_log (time_unix_ms, token, action, target, reason, status) VALUES (@t, @token, @action, @target, @reason, @status)",
            ("@t", time.ToUnixTimeMilliseconds()), ("@token", token), ("@action", action), ("@target", target), ("@reason", reason), ("@status", status));
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Entries newest first: at or after <paramref name="since"/>, and when <paramref name="target"/> is given, those
    /// whose target names it as a whole value (<c>ro-7</c> matches <c>rolloutId=ro-7</c>, not <c>ro-70</c>).
    /// </summary>
    public async Task<IReadOnlyList<AuditEntry>> QueryAsync(DateTimeOffset? since, string? target, int limit, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        var sql = "SELECT seq, time_unix_ms, token, action, target, reason, status FROM audit_log WHERE time_unix_ms >= @since";
        var parameters = new List<(string, object?)> { ("@since", since?.ToUnixTimeMilliseconds() ?? 0L) };
        if (target is not null)
        {
            // Whole values only: the target column is "name=value" pairs separated by ", ".
            sql += " AND (target LIKE @t1 ESCAPE '\\' OR target LIKE @t2 ESCAPE '\\')";
            var v = EscapeLike(target);
            parameters.AddRange([("@t1", $"%={v}"), ("@t2", $"%={v}, %")]);
        }
        sql += " ORDER BY seq DESC LIMIT @limit";
        parameters.Add(("@limit", limit));
        await using var cmd = NodeDatabase.Command(c, sql, [.. parameters]);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var rows = new List<AuditEntry>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
            rows.Add(new AuditEntry(Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture),
                DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture)),
                r.GetString(2), r.GetString(3), NullableString(r, 4), NullableString(r, 5), Convert.ToInt32(r.GetValue(6), CultureInfo.InvariantCulture)));
        return rows;
    }

    private static string? NullableString(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static string EscapeLike(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);
}
