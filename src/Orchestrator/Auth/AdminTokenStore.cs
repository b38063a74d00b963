using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.Messages.Storage;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Auth;

/// <summary>One row of the <c>admin_tokens</c> table.</summary>
/// <param name="Name">Token name (primary key).</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the token.</param>
/// <param name="Scopes">Its scopes.</param>
/// <param name="Configured">True for a revocation record of a configured or bootstrap token (which lives outside the table).</param>
/// <param name="CreatedUtc">When the row was written.</param>
/// <param name="ExpiresUtc">Expiry; null: never.</param>
/// <param name="RevokedUtc">Revocation time; null: not revoked.</param>
public sealed record AdminTokenRecord(string Name, string Sha256, IReadOnlyList<string> Scopes, bool Configured, DateTimeOffset CreatedUtc,
    DateTimeOffset? ExpiresUtc, DateTimeOffset? RevokedUtc);

/// <summary>
/// Admin tokens in the node database, so every node of a cluster sees the same ones: tokens made by
/// <c>orch token create</c> (only their SHA-256 is stored) and revocations of configured and bootstrap tokens (their
/// name and hash, so a new bootstrap token under the same name is not revoked with the old one).
/// </summary>
public sealed class AdminTokenStore(NodeDatabase db, TimeProvider clock)
{
    /// <summary>Creates the table when missing.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        var lockDdl = db.IsPostgres ? PostgresSchemaLock.Prefix : "";
        await using var cmd = NodeDatabase.Command(c, lockDdl +
            "CREATE TABLE IF NOT EXISTS admin_tokens (name VARCHAR(64) PRIMARY KEY, sha256 VARCHAR(64) NOT NULL, scopes VARCHAR(64) NOT NULL, " +
            "configured INT NOT NULL, created_unix_ms BIGINT NOT NULL, expires_unix_ms BIGINT NULL, revoked_unix_ms BIGINT NULL)");
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Every row.</summary>
    public async Task<IReadOnlyList<AdminTokenRecord>> LoadAsync(CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c,
            "SELECT name, sha256, scopes, configured, created_unix_ms, expires_unix_ms, revoked_unix_ms FROM admin_tokens ORDER BY name");
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var rows = new List<AdminTokenRecord>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            rows.Add(new AdminTokenRecord(r.GetString(0), r.GetString(1),
                r.GetString(2).Split(',', StringSplitOptions.RemoveEmptyEntries), Convert.ToInt64(r.GetValue(3), CultureInfo.InvariantCulture) != 0,
                Time(r.GetValue(4))!.Value, Time(r.GetValue(5)), Time(r.GetValue(6))));
        }
        return rows;
    }

    /// <summary>
    /// Creates a token named <paramref name="name"/>; returns it (shown once) or null when a row of that name exists
    /// (the caller checks configured names first).
    /// </summary>
    public async Task<(string Token, AdminTokenRecord Record)?> CreateAsync(string name, IReadOnlyList<string> scopes, DateTimeOffset? expires, CancellationToken ct = default)
    {
        var token = "orch_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var record = new AdminTokenRecord(name, Sha256Hex(token), scopes, false, Truncate(clock.GetUtcNow()), expires is null ? null : Truncate(expires.Value), null);
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c,
            "INSERT INTO admin_tokens (name, sha256, scopes, configured, created_unix_ms, expires_unix_ms, revoked_unix_ms) " +
            "VALUES (@name, @sha, @scopes, 0, @created, @expires, NULL) ON CONFLICT (name) DO NOTHING",
            ("@name", name), ("@sha", record.Sha256), ("@scopes", string.Join(',', scopes)), ("@created", record.CreatedUtc.ToUnixTimeMilliseconds()),
            ("@expires", record.ExpiresUtc?.ToUnixTimeMilliseconds()));
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0 ? null : (token, record);
    }

    /// <summary>Revokes a created token; false when no unrevoked created token has that name.</summary>
    public async Task<bool> RevokeCreatedAsync(string name, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c,
            "UPDATE admin_tokens SET revoked_unix_ms = @now WHERE name = @name AND configured = 0 AND revoked_unix_ms IS NULL",
            ("@now", clock.GetUtcNow().ToUnixTimeMilliseconds()), ("@name", name));
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
    }

    /// <summary>Records the revocation of a configured or bootstrap token (by name and hash); idempotent.</summary>
    public async Task RevokeConfiguredAsync(string name, string sha256Hex, IReadOnlyList<string> scopes, CancellationToken ct = default)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using var c = await db.OpenAsync(ct).ConfigureAwait(false);
        // A revocation record of an older token under the same name (a bootstrap token that was re-generated) is replaced.
        await using var cmd = NodeDatabase.Command(c,
            "INSERT INTO admin_tokens (name, sha256, scopes, configured, created_unix_ms, expires_unix_ms, revoked_unix_ms) " +
            "VALUES (@name, @sha, @scopes, 1, @now, NULL, @now) " +
            "ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, revoked_unix_ms = excluded.revoked_unix_ms WHERE admin_tokens.configured = 1",
            ("@name", name), ("@sha", sha256Hex), ("@scopes", string.Join(',', scopes)), ("@now", now));
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Lower-case hex SHA-256 of a token's UTF-8 bytes.</summary>
    public static string Sha256Hex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static DateTimeOffset Truncate(DateTimeOffset t) => DateTimeOffset.FromUnixTimeMilliseconds(t.ToUnixTimeMilliseconds());

    private static DateTimeOffset? Time(object v) => v is null or DBNull ? null : DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(v, CultureInfo.InvariantCulture));
}
