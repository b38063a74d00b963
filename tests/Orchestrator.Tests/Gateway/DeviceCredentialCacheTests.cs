using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Headers;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Storage;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// The gateway's credential cache: bounded by <c>Credentials:CacheEntries</c> (least recently used evicted, never a
/// clear-all), entries trusted for <c>Credentials:CacheTtl</c>, every database read counted, and a credential revoked
/// through one node of a cluster refused by the other within the TTL.
/// </summary>
public sealed class DeviceCredentialCacheTests
{
    private static async Task<(DeviceCredentialStore Store, NodeDatabase Db, string Dir)> OpenStoreAsync(int entries, TimeSpan ttl)
    {
        var dir = Directory.CreateTempSubdirectory("orch-cred-cache-").FullName;
        var db = new NodeDatabase(new DatabaseOptions(), dir);
        var store = new DeviceCredentialStore(db, TimeProvider.System, new CredentialCacheOptions { CacheEntries = entries, CacheTtl = ttl });
        await store.EnsureSchemaAsync();
        return (store, db, dir);
    }

    [Fact]
    public async Task A_cached_key_is_not_read_again_within_the_ttl_and_every_read_is_counted()
    {
        var (store, db, dir) = await OpenStoreAsync(1000, TimeSpan.FromSeconds(2));
        await using var _ = db;
        try
        {
            for (var i = 0; i < 20; i++) Assert.NotNull(await store.ProvisionAsync($"cache-{i}", rotate: false));
            // A fresh credential is cached by the node that issued it.
            for (var i = 0; i < 20; i++) Assert.True(await store.ExistsAsync($"cache-{i}"));
            Assert.Equal(0, store.DatabaseReads);

            Assert.False(await store.ExistsAsync("cache-nobody"));
            Assert.False(await store.ExistsAsync("cache-nobody"));
            Assert.Equal(1, store.DatabaseReads);

            await Task.Delay(TimeSpan.FromSeconds(2.5));
            for (var i = 0; i < 20; i++) Assert.True(await store.ExistsAsync($"cache-{i}"));
            Assert.Equal(21, store.DatabaseReads);
            for (var i = 0; i < 20; i++) Assert.True(await store.ExistsAsync($"cache-{i}"));
            Assert.Equal(21, store.DatabaseReads);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public async Task A_flood_of_unknown_ids_stays_within_the_bound_and_does_not_clear_recently_used_devices()
    {
        var (store, db, dir) = await OpenStoreAsync(200, TimeSpan.FromMinutes(5));
        await using var _ = db;
        try
        {
            Assert.NotNull(await store.ProvisionAsync("cache-busy", rotate: false));
            var reads = store.DatabaseReads;
            for (var i = 0; i < 2000; i++)
            {
                Assert.False(await store.ExistsAsync($"cache-guess-{i}"));
                // The busy device checks in between the guesses, more often than the flood turns the cache's newest
                // entries over (a fifth of the bound), as a device the cache is sized for would.
                if (i % 10 == 0) Assert.True(await store.ExistsAsync("cache-busy"));
                Assert.True(store.CachedEntries <= 200, $"{store.CachedEntries} entries cached with Credentials:CacheEntries=200");
            }
            // Each guess read the database once; the busy device at most once more (a clear-all would drop it every
            // time the bound is reached).
            Assert.InRange(store.DatabaseReads - reads - 2000, 0, 1);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public async Task Revocation_and_rotation_are_announced_once_committed_and_an_announced_change_evicts_the_cached_key()
    {
        var (store, db, dir) = await OpenStoreAsync(1000, TimeSpan.FromMinutes(10));
        await using var _ = db;
        try
        {
            var announced = new List<string>();
            store.AttachPublisher(announced.Add);
            Assert.NotNull(await store.ProvisionAsync("cache-a", rotate: false));
            Assert.NotNull(await store.ProvisionAsync("cache-b", rotate: false));
            Assert.Empty(announced);
            Assert.NotNull(await store.ProvisionAsync("cache-a", rotate: true));
            Assert.True(await store.RevokeAsync("cache-b"));
            Assert.False(await store.RevokeAsync("cache-b"));
            Assert.Equal(["cache-a", "cache-b"], announced);

            // Another node's store (same database) holds cache-a's key; the announcement makes it read again.
            var other = new DeviceCredentialStore(db, TimeProvider.System, new CredentialCacheOptions { CacheTtl = TimeSpan.FromMinutes(10) });
            Assert.True(await other.ExistsAsync("cache-a"));
            Assert.True(await other.ExistsAsync("cache-a"));
            Assert.Equal(1, other.DatabaseReads);
            Assert.True(await store.RevokeAsync("cache-a"));
            Assert.True(await other.ExistsAsync("cache-a"));
            other.Evict("cache-a");
            Assert.False(await other.ExistsAsync("cache-a"));
            Assert.Equal(2, other.DatabaseReads);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public async Task Preload_caches_every_stored_key_across_pages_up_to_the_bound_and_they_expire_after_the_ttl()
    {
        var (store, db, dir) = await OpenStoreAsync(100_000, TimeSpan.FromMinutes(10));
        await using var _ = db;
        try
        {
            var ids = Enumerable.Range(0, DeviceCredentialStore.PreloadPageSize + 500).Select(i => $"preload-{i:D6}").ToList();
            await foreach (var __ in store.ProvisionBatchAsync(ids)) { }

            // A node starting on the same database: one scan (two pages), then no read per known device.
            var started = new DeviceCredentialStore(db, TimeProvider.System, new CredentialCacheOptions { CacheTtl = TimeSpan.FromSeconds(2) });
            Assert.Equal(ids.Count, await started.PreloadAsync());
            Assert.Equal(ids.Count, started.Preloaded);
            foreach (var id in ids) Assert.True(await started.ExistsAsync(id));
            Assert.Equal(0, started.DatabaseReads);
            Assert.False(await started.ExistsAsync("preload-nobody"));
            Assert.Equal(1, started.DatabaseReads);

            // Preloaded keys are trusted for the TTL like any loaded key, then read again.
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            Assert.True(await started.ExistsAsync(ids[0]));
            Assert.Equal(2, started.DatabaseReads);

            // Bounded by Credentials:CacheEntries: the rest are read when their devices check in.
            var small = new DeviceCredentialStore(db, TimeProvider.System, new CredentialCacheOptions { CacheEntries = 300 });
            Assert.Equal(300, await small.PreloadAsync());
            Assert.True(small.CachedEntries <= 300, $"{small.CachedEntries} entries cached with Credentials:CacheEntries=300");
            foreach (var id in ids.Take(300)) Assert.True(await small.ExistsAsync(id));
            Assert.Equal(0, small.DatabaseReads);
            Assert.True(await small.ExistsAsync(ids[^1]));
            Assert.Equal(1, small.DatabaseReads);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public async Task A_key_revoked_after_the_preload_is_refused_once_its_change_is_announced()
    {
        var (store, db, dir) = await OpenStoreAsync(1000, TimeSpan.FromMinutes(10));
        await using var _ = db;
        try
        {
            Assert.NotNull(await store.ProvisionAsync("preload-a", rotate: false));
            Assert.NotNull(await store.ProvisionAsync("preload-b", rotate: false));
            Assert.True(await store.RevokeAsync("preload-b"));
            var other = new DeviceCredentialStore(db, TimeProvider.System, new CredentialCacheOptions { CacheTtl = TimeSpan.FromMinutes(10) });
            Assert.Equal(1, await other.PreloadAsync());
            Assert.False(await other.ExistsAsync("preload-b"));
            Assert.True(await other.ExistsAsync("preload-a"));
            Assert.True(await store.RevokeAsync("preload-a"));
            other.Evict("preload-a");
            Assert.False(await other.ExistsAsync("preload-a"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Cache_settings_out_of_range_are_refused_with_the_setting_named()
    {
        Assert.Empty(new CredentialCacheOptions().Validate());
        var problems = new CredentialCacheOptions { CacheEntries = 0, CacheTtl = TimeSpan.Zero }.Validate().ToList();
        Assert.Contains(problems, p => p.StartsWith("Credentials:CacheEntries 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Credentials:CacheTtl 00:00:00 is out of range", StringComparison.Ordinal));
        var dir = Directory.CreateTempSubdirectory("orch-cred-config-").FullName;
        try
        {
            var ex = Assert.Throws<InvalidOperationException>(() => NodeApp.Build([], c => c.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Node:DataDirectory"] = Path.Combine(dir, "data"),
                ["Node:StoreRoot"] = Path.Combine(dir, "store"),
                ["Credentials:CacheEntries"] = "-5",
            })));
            Assert.StartsWith(NodeSettings.InvalidConfigurationHeading, ex.Message);
            Assert.Contains("Credentials:CacheEntries -5 is out of range", ex.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static async Task<HttpResponseMessage> CheckInAsync(TestNode node, string deviceId, string secret)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/check-in")
        {
            Content = JsonContent.Create(new CheckInRequest("acme", 0, "digest-0", null, "1.0.0")),
        };
        DeviceSigning.SignAs(req, deviceId, secret);
        return await node.Http.SendAsync(req);
    }

    [PostgresFact]
    public async Task A_credential_revoked_through_one_node_is_refused_by_the_other_within_the_ttl()
    {
        Assert.False(string.IsNullOrEmpty(PostgresFactAttribute.ConnectionString), "ORCH_REQUIRE_POSTGRES=1 but ORCH_TEST_POSTGRES is unset.");
        var ttl = TimeSpan.FromSeconds(4);
        var database = new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgresql",
            ["Database:ConnectionString"] = PostgresFactAttribute.ConnectionString,
            ["Credentials:CacheTtl"] = ttl.ToString(),
        };
        var port = LoopbackPort.Free();
        await using var a = await TestNode.StartAsync(new Dictionary<string, string?>(database)
        {
            ["Node:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        await using var b = await TestNode.StartAsync(new Dictionary<string, string?>(database)
        {
            ["Node:Port"] = "0",
            ["Node:SeedNodes:0"] = $"akka.tcp://orchestrator@127.0.0.1:{port}",
        });
        var device = "cache-revoked-" + Guid.NewGuid().ToString("N")[..8];
        var secret = await a.ProvisionAsync(device);
        b.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var bStore = b.Services.GetRequiredService<DeviceCredentialStore>();

        using (var first = await CheckInAsync(b, device, secret)) Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var reads = bStore.DatabaseReads;
        using (var second = await CheckInAsync(b, device, secret)) Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(reads, bStore.DatabaseReads);

        using (var del = new HttpRequestMessage(HttpMethod.Delete, $"/admin/v1/devices/{device}/credential"))
        {
            del.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            using var res = await a.Http.SendAsync(del);
            Assert.Equal(HttpStatusCode.NoContent, res.StatusCode);
        }
        var revoked = Stopwatch.StartNew();
        // The node that revoked refuses at once; the other once its cached key expires.
        using (var onA = await CheckInAsync(a, device, secret)) Assert.Equal(HttpStatusCode.Unauthorized, onA.StatusCode);
        HttpStatusCode status;
        do
        {
            using var res = await CheckInAsync(b, device, secret);
            status = res.StatusCode;
            if (status == HttpStatusCode.Unauthorized) break;
            Assert.Equal(HttpStatusCode.OK, status);
            await Task.Delay(200);
        } while (revoked.Elapsed < ttl + TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.True(revoked.Elapsed <= ttl + TimeSpan.FromSeconds(1), $"node b accepted the revoked credential for {revoked.Elapsed} with a TTL of {ttl}");
    }
}
