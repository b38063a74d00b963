namespace Orchestrator.Node.Auth;

/// <summary>
/// Section <c>Credentials</c>: the gateway's in-memory cache of device request keys (<see cref="DeviceCredentialStore"/>).
/// The cache is what keeps a check-in from reading the node database. A credential revoked or rotated through another
/// node is evicted here as soon as that node's announcement arrives (distributed pub-sub); the TTL is the longest it
/// still authenticates here when the announcement is lost.
/// </summary>
public sealed class CredentialCacheOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Credentials";

    /// <summary>Default of <see cref="CacheEntries"/>: a node sized for a million devices keeps each one's key.</summary>
    public const int DefaultCacheEntries = 1_000_000;

    /// <summary>Largest accepted <see cref="CacheEntries"/> (an entry costs a few hundred bytes).</summary>
    public const int MaxCacheEntries = 50_000_000;

    /// <summary>
    /// Most device ids whose request key (or absence of one) is kept in memory; beyond it the least recently used
    /// entries are evicted one by one. Set it to at least the devices this node's gateway serves, or check-ins of
    /// evicted devices read the database.
    /// </summary>
    public int CacheEntries { get; set; } = DefaultCacheEntries;

    /// <summary>
    /// How long a loaded request key is trusted before it is read again (default 10 min: longer than the agents'
    /// 5-minute check-in interval, so a device on schedule is served from memory at least every other check-in).
    /// A credential revoked or rotated through any node stops working here at once (the change is announced to every
    /// node); this is the bound when an announcement is lost.
    /// </summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Load the stored request keys into the cache when the node starts (in pages, at most <see cref="CacheEntries"/>),
    /// before it reports ready, so a restarted node answers known devices without a database read per device. Off: each
    /// device's key is read at its first check-in.
    /// </summary>
    public bool PreloadAtStart { get; set; } = true;

    /// <summary>Problems, each naming the setting and the fix.</summary>
    public IEnumerable<string> Validate()
    {
        if (CacheEntries is < 1 or > MaxCacheEntries)
            yield return $"Credentials:CacheEntries {CacheEntries} is out of range; use 1..{MaxCacheEntries} (default {DefaultCacheEntries}, at least the devices this gateway serves).";
        if (CacheTtl <= TimeSpan.Zero || CacheTtl > TimeSpan.FromDays(1))
            yield return $"Credentials:CacheTtl {CacheTtl} is out of range; use more than 0 and at most 1.00:00:00, e.g. 00:10:00 (revocation through another node takes effect within it).";
    }
}
