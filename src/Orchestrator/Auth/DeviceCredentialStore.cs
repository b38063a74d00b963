using Orchestrator.Messages.Storage;
using BitFaster.Caching;
using BitFaster.Caching.Lru;
using System.Security.Cryptography;
using System.Globalization;
using System.Text;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Auth;

/// <summary>A freshly provisioned credential. <see cref="Secret"/> exists only in this object: the server keeps the derived request key.</summary>
public sealed record ProvisionedCredential(string DeviceId, string Secret, DateTimeOffset CreatedUtc);

/// <summary>What the server knows about a device's credential (never the secret).</summary>
public sealed record CredentialInfo(string DeviceId, DateTimeOffset CreatedUtc);

/// <summary>Result of checking a presented credential.</summary>
public enum CredentialCheck
{
    /// <summary>The signature verifies under the device's stored request key.</summary>
    Valid,
    /// <summary>The device has no credential, or the signature does not verify.</summary>
    Invalid,
}

/// <summary>
/// Per-device credentials in the node database. A secret is 32 random bytes (base64url) shown once at provisioning;
/// the table <c>device_request_keys</c> stores the request key derived from it
/// (<see cref="DeviceRequestSignature.DeriveRequestKey"/>), because verifying a request signature means recomputing
/// it. That key is as sensitive as the secret for the device API (whoever holds it can sign as the device until the
/// credential is rotated), though it does not reveal the secret. Keys (and the absence of one) are kept in a bounded
/// LRU cache (<see cref="CredentialCacheOptions"/>); a full cache evicts its least recently used entries, never
/// everything at once. A revocation or rotation is announced to every node (<see cref="AttachPublisher"/>, distributed
/// pub-sub), which evicts the device's entry at once (<see cref="Evict"/>); pub-sub is best effort, so entries also
/// expire <see cref="CredentialCacheOptions.CacheTtl"/> after they were loaded, the bound when an announcement is lost.
/// Signatures are compared in constant time.
/// </summary>
public sealed class DeviceCredentialStore
{
    private readonly NodeDatabase _db;
    private readonly TimeProvider _clock;
    private readonly ICache<string, CachedKey> _cache;
    private readonly int _capacity;
    private long _databaseReads;
    private long _preloaded;
    // Bumped by every eviction: a load that read the database before an eviction must not put its (possibly revoked)
    // key back into the cache after it.
    private long _evictions;
    private Action<string> _publishChange = _ => { };

    // A device that has no credential yet may get one through another node at any moment (provisioning just before
    // the agent's first check-in); its absence is trusted for less time than a key so it is not locked out for a TTL.
    private static readonly TimeSpan MaxUnknownTtl = TimeSpan.FromSeconds(30);

    /// <summary>Uses <paramref name="db"/>; call <see cref="EnsureSchemaAsync"/> once at start.</summary>
    public DeviceCredentialStore(NodeDatabase db, TimeProvider clock, CredentialCacheOptions options)
    {
        _db = db;
        _clock = clock;
        CacheTtl = options.CacheTtl;
        _capacity = options.CacheEntries;
        _cache = new ConcurrentLruBuilder<string, CachedKey>()
            .WithKeyComparer(StringComparer.Ordinal)
            .WithCapacity(options.CacheEntries)
            .WithExpireAfter(new Expiry(options.CacheTtl, options.CacheTtl < MaxUnknownTtl ? options.CacheTtl : MaxUnknownTtl))
            .Build();
    }

    /// <summary>How long a loaded request key is trusted before it is read again.</summary>
    public TimeSpan CacheTtl { get; }

    /// <summary>Request keys read from the database since start (cache misses); the benchmark divides it by check-ins.</summary>
    public long DatabaseReads => Interlocked.Read(ref _databaseReads);

    /// <summary>Request keys put into the cache by <see cref="PreloadAsync"/> since start.</summary>
    public long Preloaded => Interlocked.Read(ref _preloaded);

    /// <summary>Entries the cache holds now (expired ones may still be counted until they are touched or evicted).</summary>
    public int CachedEntries => _cache.Count;

    /// <summary>
    /// Sets how a committed revocation or rotation is announced to the other nodes (the node's actor system publishes
    /// a <see cref="DeviceCredentialChanged"/>; see <see cref="CredentialChangeHosting"/>). Until then only this node's
    /// cache learns of it.
    /// </summary>
    public void AttachPublisher(Action<string> publishChange) => _publishChange = publishChange;

    /// <summary>Drops the cached key (or cached absence) of <paramref name="deviceId"/>; its next request reads the database.</summary>
    public void Evict(string deviceId)
    {
        Interlocked.Increment(ref _evictions);
        _cache.TryRemove(deviceId);
    }

    /// <summary>Device ids follow <see cref="DeviceIdRules.Pattern"/> (the device actors' rule).</summary>
    public static bool IsValidDeviceId(string? id) => DeviceIdRules.IsValid(id);

    /// <summary>Creates the table when missing.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        var lockDdl = _db.IsPostgres ? PostgresSchemaLock.Prefix : "";
        await using var cmd = NodeDatabase.Command(c,
            lockDdl + $"CREATE TABLE IF NOT EXISTS device_request_keys (device_id VARCHAR(128) PRIMARY KEY, request_key {_db.BlobType} NOT NULL, created_unix_ms BIGINT NOT NULL)");
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
        var key = DeviceRequestSignature.DeriveRequestKey(secret);
        var now = _clock.GetUtcNow();
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        var sql = rotate
            ? "INSERT INTO device_request_keys (device_id, request_key, created_unix_ms) VALUES (@id, @key, @ts) ON CONFLICT (device_id) DO UPDATE SET request_key = excluded.request_key, created_unix_ms = excluded.created_unix_ms"
            : "INSERT INTO device_request_keys (device_id, request_key, created_unix_ms) VALUES (@id, @key, @ts) ON CONFLICT (device_id) DO NOTHING";
        await using var cmd = NodeDatabase.Command(c, sql, ("@id", deviceId), ("@key", key), ("@ts", now.ToUnixTimeMilliseconds()));
        var rows = await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        if (rows == 0) return null;
        _cache.AddOrUpdate(deviceId, new CachedKey(key));
        if (rotate) _publishChange(deviceId);
        return new ProvisionedCredential(deviceId, secret, DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()));
    }

    /// <summary>Rows written per transaction (and ids per existence query) by the batch methods.</summary>
    public const int BatchSize = 500;

    /// <summary>The ids of <paramref name="deviceIds"/> that already have a credential, in the order given.</summary>
    public async Task<IReadOnlyList<string>> ExistingAsync(IReadOnlyList<string> deviceIds, CancellationToken ct = default)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        foreach (var chunk in deviceIds.Chunk(BatchSize))
        {
            var names = string.Join(", ", chunk.Select((_, i) => "@p" + i.ToString(CultureInfo.InvariantCulture)));
            await using var cmd = NodeDatabase.Command(c, $"SELECT device_id FROM device_request_keys WHERE device_id IN ({names})",
                chunk.Select((id, i) => ("@p" + i.ToString(CultureInfo.InvariantCulture), (object?)id)).ToArray());
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false)) found.Add(reader.GetString(0));
        }
        return deviceIds.Where(found.Contains).ToList();
    }

    /// <summary>
    /// Creates a credential for each of <paramref name="deviceIds"/> (none may have one), <see cref="BatchSize"/> rows per
    /// transaction, yielding each batch's credentials once it is committed. A batch that fails (a device given a
    /// credential meanwhile by another request) is rolled back whole and ends the enumeration with its exception; the
    /// batches yielded before it stay created.
    /// </summary>
    public async IAsyncEnumerable<IReadOnlyList<ProvisionedCredential>> ProvisionBatchAsync(IReadOnlyList<string> deviceIds,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        foreach (var chunk in deviceIds.Chunk(BatchSize))
        {
            var now = _clock.GetUtcNow();
            var created = new List<ProvisionedCredential>(chunk.Length);
            var parameters = new List<(string, object?)>(chunk.Length * 3);
            var rows = new StringBuilder();
            var ms = now.ToUnixTimeMilliseconds();
            for (var i = 0; i < chunk.Length; i++)
            {
                var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
                var n = i.ToString(CultureInfo.InvariantCulture);
                rows.Append(i == 0 ? "" : ", ").Append("(@i").Append(n).Append(", @k").Append(n).Append(", @t").Append(n).Append(')');
                parameters.Add(("@i" + n, chunk[i]));
                parameters.Add(("@k" + n, DeviceRequestSignature.DeriveRequestKey(secret)));
                parameters.Add(("@t" + n, ms));
                created.Add(new ProvisionedCredential(chunk[i], secret, DateTimeOffset.FromUnixTimeMilliseconds(ms)));
            }
            await using (var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false))
            {
                await using var cmd = NodeDatabase.Command(c, $"INSERT INTO device_request_keys (device_id, request_key, created_unix_ms) VALUES {rows}", [.. parameters]);
                cmd.Transaction = tx;
                await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                await tx.CommitAsync(ct).ConfigureAwait(false);
            }
            foreach (var (p, i) in created.Select((p, i) => (p, i))) _cache.AddOrUpdate(p.DeviceId, new CachedKey((byte[])parameters[i * 3 + 1].Item2!));
            yield return created;
        }
    }

    /// <summary>Rows read per query by <see cref="PreloadAsync"/>.</summary>
    public const int PreloadPageSize = 10_000;

    /// <summary>
    /// Fills the cache with the stored request keys, <see cref="PreloadPageSize"/> rows per query in device id order,
    /// at most <see cref="CredentialCacheOptions.CacheEntries"/> of them, so the first check-in of each device after a
    /// start does not read the database on its own. A preloaded key expires <see cref="CacheTtl"/> after its page was
    /// read, like any loaded key, so revocation keeps its bound. A page during whose read a key was evicted (a
    /// revocation or rotation announced meanwhile) is not cached: its devices read their keys when they check in.
    /// Returns the keys cached.
    /// </summary>
    public async Task<long> PreloadAsync(CancellationToken ct = default)
    {
        var after = "";
        long cached = 0, read = 0;
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        while (read < _capacity)
        {
            var evictions = Interlocked.Read(ref _evictions);
            var page = new List<(string Id, byte[] Key)>((int)Math.Min(PreloadPageSize, _capacity - read));
            await using (var cmd = NodeDatabase.Command(c,
                             "SELECT device_id, request_key FROM device_request_keys WHERE device_id > @after ORDER BY device_id LIMIT @take",
                             ("@after", after), ("@take", page.Capacity)))
            await using (var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(ct).ConfigureAwait(false)) page.Add((reader.GetString(0), (byte[])reader.GetValue(1)));
            }
            if (page.Count == 0) break;
            read += page.Count;
            after = page[^1].Id;
            if (Interlocked.Read(ref _evictions) != evictions) continue;
            // A key a check-in loaded meanwhile is as fresh as the page's: keep it (and its expiry).
            foreach (var (id, key) in page) _cache.GetOrAdd(id, static (_, k) => new CachedKey(k), key);
            cached += page.Count;
            Interlocked.Add(ref _preloaded, page.Count);
            if (page.Count < page.Capacity) break;
        }
        return cached;
    }

    /// <summary>The device's credential metadata, or null when it has none.</summary>
    public async Task<CredentialInfo?> GetAsync(string deviceId, CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "SELECT created_unix_ms FROM device_request_keys WHERE device_id = @id", ("@id", deviceId));
        var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return v is null or DBNull ? null : new CredentialInfo(deviceId, DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <summary>Deletes the device's credential; returns false when it had none.</summary>
    public async Task<bool> RevokeAsync(string deviceId, CancellationToken ct = default)
    {
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "DELETE FROM device_request_keys WHERE device_id = @id", ("@id", deviceId));
        var rows = await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        Evict(deviceId);
        if (rows > 0) _publishChange(deviceId);
        return rows > 0;
    }

    /// <summary>
    /// Checks a request signature against the device's stored request key in constant time. An unknown device costs
    /// the same HMAC as a known one, so timing does not reveal which device ids exist.
    /// </summary>
    public async ValueTask<CredentialCheck> VerifyAsync(DeviceRequestAuthorization auth, string method, string pathAndQuery, string bodySha256Hex,
        CancellationToken ct = default)
    {
        var key = await RequestKeyAsync(auth.DeviceId, ct).ConfigureAwait(false);
        var valid = DeviceRequestSignature.Verify(key ?? UnknownDeviceKey, auth, method, pathAndQuery, bodySha256Hex);
        return valid && key is not null ? CredentialCheck.Valid : CredentialCheck.Invalid;
    }

    /// <summary>True when the device has a credential (cached like the key).</summary>
    public async ValueTask<bool> ExistsAsync(string deviceId, CancellationToken ct = default) =>
        await RequestKeyAsync(deviceId, ct).ConfigureAwait(false) is not null;

    private async ValueTask<byte[]?> RequestKeyAsync(string deviceId, CancellationToken ct)
    {
        if (_cache.TryGet(deviceId, out var cached)) return cached.Key;
        var evictions = Interlocked.Read(ref _evictions);
        var loaded = await LoadAsync(deviceId, ct).ConfigureAwait(false);
        // Unknown ids are cached too (so guessing ids does not hit the database per request); the cache's bound keeps
        // a flood of random ids from growing memory, at the price of evicting the least recently seen devices.
        // A load that overlapped an eviction may hold the key from before a revocation: used once, never cached.
        if (Interlocked.Read(ref _evictions) == evictions) _cache.AddOrUpdate(deviceId, loaded);
        return loaded.Key;
    }

    private static readonly byte[] UnknownDeviceKey = RandomNumberGenerator.GetBytes(32);

    private async Task<CachedKey> LoadAsync(string deviceId, CancellationToken ct)
    {
        Interlocked.Increment(ref _databaseReads);
        GatewayMetrics.CredentialDbReads.Add(1);
        await using var c = await _db.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = NodeDatabase.Command(c, "SELECT request_key FROM device_request_keys WHERE device_id = @id", ("@id", deviceId));
        var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return new CachedKey(v as byte[]);
    }

    /// <summary>A device's request key as loaded; null when the device has no credential.</summary>
    private sealed record CachedKey(byte[]? Key);

    // Entries live a fixed time from when they were loaded (reads do not extend them), so a revoked key is reloaded
    // within the TTL however often the device checks in.
    private sealed class Expiry(TimeSpan known, TimeSpan unknown) : IExpiryCalculator<string, CachedKey>
    {
        private readonly Duration _known = Duration.FromTimeSpan(known);
        private readonly Duration _unknown = Duration.FromTimeSpan(unknown);

        public Duration GetExpireAfterCreate(string key, CachedKey value) => value.Key is null ? _unknown : _known;

        public Duration GetExpireAfterRead(string key, CachedKey value, Duration current) => current;

        public Duration GetExpireAfterUpdate(string key, CachedKey value, Duration current) => GetExpireAfterCreate(key, value);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
