using System.Net.Http.Headers;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.ChunkStore;

/// <summary>Reference counts from published manifests drive garbage collection of blob backends.</summary>
public sealed class GarbageCollectionTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orch-gc-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    private (FileSystemStore Store, PublishResult V1, PublishResult V2) Publish(string storeRoot)
    {
        var tree = Path.Combine(_root, "tree");
        Directory.CreateDirectory(tree);
        var shared = new byte[100_000];
        new Random(1).NextBytes(shared);
        File.WriteAllBytes(Path.Combine(tree, "shared.bin"), shared);
        File.WriteAllText(Path.Combine(tree, "v.txt"), "one");
        var store = FileSystemStore.Open(storeRoot, create: true);
        using var key = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        var v1 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "1.0.0", tree));
        File.WriteAllText(Path.Combine(tree, "v.txt"), "two");
        var v2 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "2.0.0", tree));
        return (store, v1, v2);
    }

    [Fact]
    public void Counts_reference_shared_chunks_once_per_manifest()
    {
        var (store, v1, v2) = Publish(Path.Combine(_root, "store"));
        var counts = ChunkReferenceCounts.FromStore(store);
        Assert.Equal(2, counts.Manifests);
        var all = store.EnumerateChunks().Select(c => c.Hex).ToList();
        Assert.Equal(all.Count, counts.Chunks);
        Assert.Contains(all, id => counts[id] == 2); // the shared file's chunks
        Assert.Contains(all, id => counts[id] == 1); // each version's own v.txt chunk
        Assert.Equal(0, counts[new string('f', 64)]);
    }

    [Fact]
    public async Task Collection_keeps_the_patch_objects_of_a_delta_between_listed_versions()
    {
        var storeRoot = Path.Combine(_root, "store");
        var tree = Path.Combine(_root, "delta-tree");
        Directory.CreateDirectory(tree);
        var app = new byte[200_000];
        new Random(2).NextBytes(app);
        File.WriteAllBytes(Path.Combine(tree, "app"), app);
        var store = FileSystemStore.Open(storeRoot, create: true);
        using var key = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        new Publisher(store, content, key).Publish(new PublishRequest("acme", "1.0.0", tree));
        for (var at = 0; at < app.Length; at += 5000) app[at] ^= 1;
        File.WriteAllBytes(Path.Combine(tree, "app"), app);
        new Publisher(store, content, key).Publish(new PublishRequest("acme", "2.0.0", tree));
        var delta = new Orchestrator.ChunkStore.Deltas.DeltaBuilder(store, content, key) { Level = 3 }.Build("acme", "1.0.0", "2.0.0");
        var patchObjects = delta.Delta.DistinctObjects().Select(i => i.Hex).ToList();
        Assert.NotEmpty(patchObjects);

        var blobs = new FileSystemChunkBlobStore(storeRoot);
        var now = DateTimeOffset.UtcNow;
        foreach (var id in store.EnumerateChunks().Select(c => c.Hex))
            File.SetLastWriteTimeUtc(blobs.PathOf(id), now.AddHours(-2).UtcDateTime);
        var counts = ChunkReferenceCounts.FromStore(store);
        Assert.All(patchObjects, id => Assert.Equal(1, counts[id]));
        var report = await BlobGarbageCollector.CollectAsync(blobs, counts, TimeSpan.FromHours(1), now, dryRun: false);
        Assert.Equal(0, report.Deleted);
        Assert.All(patchObjects, id => Assert.True(File.Exists(blobs.PathOf(id))));

        // Once a version of the delta is no longer listed, its patch objects are garbage.
        store.WriteFile(StoreLayout.IndexPath("acme"), Orchestrator.ChunkStore.Manifests.ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath("acme"))!)
            is var index ? (index with { Versions = index.Versions.Skip(1).ToList() }).ToBytes() : []);
        var after = await BlobGarbageCollector.CollectAsync(blobs, ChunkReferenceCounts.FromStore(store), TimeSpan.FromHours(1), now, dryRun: false);
        Assert.All(patchObjects, id => Assert.False(File.Exists(blobs.PathOf(id))));
        Assert.True(after.Deleted >= patchObjects.Count);
    }

    [Fact]
    public async Task Collection_deletes_old_orphans_and_keeps_referenced_and_recent_chunks()
    {
        var storeRoot = Path.Combine(_root, "store");
        var (store, _, _) = Publish(storeRoot);
        var blobs = new FileSystemChunkBlobStore(storeRoot);
        var oldOrphan = new byte[] { 1, 2, 3 };
        var newOrphan = new byte[] { 4, 5, 6 };
        var oldId = ChunkId.Of(oldOrphan).Hex;
        var newId = ChunkId.Of(newOrphan).Hex;
        await blobs.PutIfAbsentAsync(oldId, oldOrphan);
        await blobs.PutIfAbsentAsync(newId, newOrphan);
        var now = DateTimeOffset.UtcNow;
        foreach (var id in store.EnumerateChunks().Select(c => c.Hex).Where(id => id != newId))
            File.SetLastWriteTimeUtc(blobs.PathOf(id), now.AddHours(-2).UtcDateTime);
        var counts = ChunkReferenceCounts.FromStore(store);

        var dry = await BlobGarbageCollector.CollectAsync(blobs, counts, TimeSpan.FromHours(1), now, dryRun: true);
        Assert.Equal(1, dry.Deleted);
        Assert.True(File.Exists(blobs.PathOf(oldId)));

        var real = await BlobGarbageCollector.CollectAsync(blobs, counts, TimeSpan.FromHours(1), now, dryRun: false);
        Assert.Equal(1, real.Deleted);
        Assert.Equal(counts.Chunks, real.Referenced);
        Assert.False(File.Exists(blobs.PathOf(oldId)));
        Assert.True(File.Exists(blobs.PathOf(newId)));
    }

    [PostgresFact]
    public async Task Postgres_backend_is_collected_against_the_store_manifests()
    {
        var (store, _, _) = Publish(Path.Combine(_root, "store"));
        await using var blobs = new PostgresChunkBlobStore(PostgresFactAttribute.ConnectionString!, "orch_chunks_gc_" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var id in store.EnumerateChunks()) await blobs.PutIfAbsentAsync(id.Hex, store.ReadChunk(id)!);
        var orphan = new byte[] { 9, 9, 9 };
        await blobs.PutIfAbsentAsync(ChunkId.Of(orphan).Hex, orphan);
        var counts = ChunkReferenceCounts.FromStore(store);
        // Grace 1 ms and "now" slightly in the future: everything counts as old.
        var report = await BlobGarbageCollector.CollectAsync(blobs, counts, TimeSpan.FromMilliseconds(1), DateTimeOffset.UtcNow.AddSeconds(5), dryRun: false);
        Assert.Equal(1, report.Deleted);
        Assert.Null(await blobs.ReadAsync(ChunkId.Of(orphan).Hex));
        Assert.Equal(counts.Chunks, report.Referenced);
        // Recent chunks are protected by the grace period.
        var fresh = await BlobGarbageCollector.CollectAsync(blobs, ChunkReferenceCounts.FromManifests([]), TimeSpan.FromHours(1), DateTimeOffset.UtcNow, dryRun: false);
        Assert.Equal(0, fresh.Examined);
    }

    [Fact]
    public async Task Admin_gc_endpoint_needs_operate_and_defaults_to_a_dry_run()
    {
        await using var node = await TestNode.StartAsync();
        var orphan = node.WriteChunk([7, 7, 7]);
        File.SetLastWriteTimeUtc(Path.Combine(node.StoreRoot, "chunks", orphan[..2], orphan), DateTime.UtcNow.AddDays(-1));
        using (var req = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/chunks/gc"))
        {
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
            using var res = await node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Forbidden, res.StatusCode);
        }
        async Task<ChunkGcResponse> Gc(HttpContent? body)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/chunks/gc") { Content = body };
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            using var res = await node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            return (await res.Content.ReadFromJsonAsync<ChunkGcResponse>(HttpProblems.Json))!;
        }
        var dry = await Gc(null);
        Assert.True(dry.DryRun);
        Assert.Equal(1, dry.Deleted);
        Assert.True(File.Exists(Path.Combine(node.StoreRoot, "chunks", orphan[..2], orphan)));
        var real = await Gc(JsonContent.Create(new ChunkGcRequest(false, 60)));
        Assert.Equal(1, real.Deleted);
        Assert.False(File.Exists(Path.Combine(node.StoreRoot, "chunks", orphan[..2], orphan)));
    }
}
