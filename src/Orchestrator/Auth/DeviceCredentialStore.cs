using Orchestrator.Messages.Storage;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Auth;

/// <summary>A freshly provisioned credential. <see cref="Secret"/> exists only in this object: the server keeps a salted hash.</summary>
public sealed record ProvisionedCredential(string DeviceId, string Secret, DateTimeOffset CreatedUtc);

/// <summary>What the server knows about a device's credential (never the secret).</summary>
public sealed record CredentialInfo(string DeviceId, DateTimeOffset CreatedUtc);

/// <summary>Result of checking a presented credential.</summary>
public enum CredentialCheck
{
    /// <summary>Secret matches the device's stored hash.</summary>
    Valid,
    /// <summary>The device has no credential, or the secret does not match.</summary>
    Invalid,
}

/// <summary>
/// Per-device credentials in the node database. A secret is 32 random bytes (base64url); the table stores a
/// random salt and HMAC-SHA256(salt, secret). A slow password hash is unnecessary because the secret has 256 bits
/// of entropy, and a fast check keeps chunk serving cheap. Comparison is constant-time. Hashes are cached in memory
/// for <see cref="CacheTtl"/> so that revocation on another node takes effect within that time.
/// </summary>
public sealed class DeviceCredentialStore
{
    /// <summary>How long a loaded hash is trusted before it is read again.</summary>
    public static readonly TimeSpan CacheTtl = TimeSpan.FromSeconds(30);

    private const int MaxCachedDevices = 200_000;

    private readonly NodeDatabase _db;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, (byte[]? Salt, byte[]? Hash, DateTimeOffset LoadedUtc)> _cache = new(StringComparer.Ordinal);

    /// <summary>Uses <paramref name="db"/>; call <see cref="EnsureSchemaAsync"/> once at start.</summary>
    public DeviceCredentialStore(NodeDatabase db, TimeProvider clock)
    {
        _db = db;
        _clock = clock;
    }

    /// <summary>Device ids follow <see cref="DeviceIdRules.Pattern"/> (the device actors' rule).</summary>
    public static bool IsValidDeviceId(string? id) => DeviceIdRules.IsValid(id);

    /// <summary>Creates the table when missing.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        var lockDdl = _db.IsPostgres ? PostgresSchemaLock.Prefix : "";
        await using var cmd = NodeDatabase.Command(c,
            lockDdl + $"CREATE TABLE IF NOT EXISTS device_credentials (device_id VARCHAR(128) PRIMARY KEY, salt {_db.BlobType} NOT NULL, hash {_db.BlobType} NOT NULL, created_unix_ms BIGINT NOT NULL)");
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a credential. When the device already has one: with <paramref name="rotate"/> it is replaced,
    /// otherwise null is returned and nothing changes.
    /// </summary>
    public async Task<ProvisionedCredential?> ProvisionAsync(string deviceId, bool rotate, CancellationToken ct = default)
    {
        if (!IsValidDeviceId(deviceId)) throw new ArgumentException($"Device id '{deviceId}' is invalid.", nameof(deviceId));
        var secretBytes = RandomNumberGenerator.GetBytes(32);
        var secret = Base64Url(secretBytes);
        var salt = RandomNumberGenerator.GetBytes(16);
        var hash = Hash(salt, secret);
        var now = _clock.GetUtcNow();
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        var sql = rotate
            ? (_db.IsPostgres
                ? "INSERT INTO device_credentials (device_id, salt, hash, created_unix_ms) VALUES (@id, @salt, @hash, @ts) ON CONFLICT (device_id) DO UPDATE SET salt = EXCLUDED.salt, hash = EXCLUDED.hash, created_unix_ms = EXCLUDED.created_unix_ms"
                : "INSERT INTO device_credentials (device_id, salt, hash, created_unix_ms) VALUES (@id, @salt, @hash, @ts) ON CONFLICT (device_id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, created_unix_ms = excluded.created_unix_ms")
            : "INSERT INTO device_credentials (device_id, salt, hash, created_unix_ms) VALUES (@id, @salt, @hash, @ts) ON CONFLICT (device_id) DO NOTHING";
        await using var cmd = NodeDatabase.Command(c, sql, ("@id", deviceId), ("@salt", salt), ("@hash", hash), ("@ts", now.ToUnixTimeMilliseconds()));
        var rows = await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        if (rows == 0) return null;
        _cache[deviceId] = (salt, hash, now);
        return new ProvisionedCredential(deviceId, secret, DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()));
    }

    /// <summary>The device's credential metadata, or null when it has none.</summary>
    public async Task<CredentialInfo?> GetAsync(string deviceId, CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "SELECT created_unix_ms FROM device_credentials WHERE device_id = @id", ("@id", deviceId));
        var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return v is null or DBNull ? null : new CredentialInfo(deviceId, DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <summary>Deletes the device's credential; returns false when it had none.</summary>
    public async Task<bool> RevokeAsync(string deviceId, CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "DELETE FROM device_credentials WHERE device_id = @id", ("@id", deviceId));
        var rows = await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        _cache.TryRemove(deviceId, out _);
        return rows > 0;
    }

    /// <summary>Checks a presented secret against the stored hash in constant time.</summary>
    public async ValueTask<CredentialCheck> VerifyAsync(string deviceId, string secret, CancellationToken ct = default)
    {
        var now = _clock.GetUtcNow();
        if (!_cache.TryGetValue(deviceId, out var entry) || now - entry.LoadedUtc > CacheTtl)
        {
            entry = await LoadAsync(deviceId, now, ct).ConfigureAwait(false);
        }
        if (entry.Salt is null || entry.Hash is null)
        {
            // Unknown device: still compute a hash so timing does not reveal which device ids exist.
            _ = Hash(UnknownDeviceSalt, secret);
            return CredentialCheck.Invalid;
        }
        return CryptographicOperations.FixedTimeEquals(Hash(entry.Salt, secret), entry.Hash) ? CredentialCheck.Valid : CredentialCheck.Invalid;
    }

    private static readonly byte[] UnknownDeviceSalt = RandomNumberGenerator.GetBytes(16);

    private async Task<(byte[]? Salt, byte[]? Hash, DateTimeOffset LoadedUtc)> LoadAsync(string deviceId, DateTimeOffset now, CancellationToken ct)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "SELECT salt, hash FROM device_credentials WHERE device_id = @id", ("@id", deviceId));
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var entry = await r.ReadAsync(ct).ConfigureAwait(false)
            ? ((byte[]?)r.GetValue(0), (byte[]?)r.GetValue(1), now)
            : ((byte[]?)null, (byte[]?)null, now);
        // Unknown ids are cached too (so guessing ids does not hit the database per request); the bound keeps a
        // flood of random ids from growing the cache without limit.
        if (_cache.Count >= MaxCachedDevices) _cache.Clear();
        _cache[deviceId] = entry;
        return entry;
    }

    private static byte[] Hash(byte[] salt, string secret) => HMACSHA256.HashData(salt, Encoding.UTF8.GetBytes(secret));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
