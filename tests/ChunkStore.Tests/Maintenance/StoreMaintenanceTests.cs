using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Maintenance;

public sealed class StoreMaintenanceTests : StoreTestBase
{
    private FileSystemStore Store => OpenStore();

    /// <summary>Three releases: each has its own binary (disjoint chunks) plus a shared library.</summary>
    private List<PublishResult> PublishThree(string? channelOnFirst = null)
    {
        var shared = TestData.Random(50_000, 500);
        var results = new List<PublishResult>();
        for (var v = 1; v <= 3; v++)
        {
            var tree = Dir.Sub($"tree{v}");
            TestData.WriteFile(tree, "bin/app", TestData.Random(60_000, v));
            TestData.WriteFile(tree, "lib/shared.so", shared);
            results.Add(new Publisher(Store, ProductKey, SigningKey).Publish(
                new PublishRequest("acme", $"{v}.0", tree, Channel: v == 1 ? channelOnFirst : null, Chunking: Small)));
        }
        return results;
    }

    private Manifest ManifestOf(PublishResult r) => ManifestSerializer.Parse(Store.ReadFile(r.ManifestPath)!);

    [Fact]
    public void Stats_count_chunks_bytes_and_versions()
    {
        var results = PublishThree("stable");
        var stats = new StoreMaintenance(Store).Stats();
        var product = Assert.Single(stats.Products);
        Assert.Equal(3, product.Versions);
        Assert.Equal("3.0", product.LatestVersion);
        Assert.Equal("1.0", product.Channels["stable"]);
        Assert.Equal(results.Sum(r => r.ChunksNew), stats.Chunks);
        Assert.Equal(results.Sum(r => r.BytesNew), stats.ChunkBytes);
        Assert.Equal(0, stats.UnreferencedChunks);
        Assert.Equal(3 * 110_000, product.LogicalBytes);
    }

    [Fact]
    public void Verify_passes_on_a_good_store_and_finds_a_corrupted_chunk()
    {
        var results = PublishThree();
        var maintenance = new StoreMaintenance(Store);
        var good = maintenance.Verify(SigningKey.PublicKey);
        Assert.True(good.Ok, string.Join("\n", good.Problems));
        Assert.Equal(3, good.ManifestsChecked);
        Assert.True(good.SignaturesVerified);

        var victim = ManifestOf(results[1]).Files[0].Chunks[0].Id;
        var path = Path.Combine(Store.Root, StoreLayout.ChunkPath(victim));
        var bytes = File.ReadAllBytes(path);
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(path, bytes);

        var bad = maintenance.Verify(SigningKey.PublicKey);
        Assert.False(bad.Ok);
        Assert.Contains(bad.Problems, p => p.Contains(victim.Hex) && p.Contains("corrupted"));
    }

    [Fact]
    public void Verify_with_the_content_key_decrypts_every_file_and_finds_a_store_encrypted_with_another()
    {
        PublishThree();
        var maintenance = new StoreMaintenance(Store);
        var good = maintenance.Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(good.Ok, string.Join("\n", good.Problems));
        Assert.Equal(6, good.FilesDecrypted); // 3 manifests x 2 files
        Assert.Equal(0, maintenance.Verify(SigningKey.PublicKey).FilesDecrypted);

        var wrong = maintenance.Verify(SigningKey.PublicKey, contentKey: ContentKey.Generate());
        Assert.Equal(6, wrong.FilesDecrypted);
        Assert.Equal(6, wrong.Problems.Count);
        Assert.All(wrong.Problems, p => Assert.Contains("does not decrypt with this content key", p));
    }

    [Fact]
    public void Verify_with_the_content_key_finds_a_manifest_that_does_not_describe_its_content()
    {
        var results = PublishThree();
        var manifest = ManifestOf(results[1]);
        var app = manifest.Files.Single(f => f.Path == "bin/app");
        var other = manifest.Files.Single(f => f.Path == "lib/shared.so").Sha256;
        // A well-formed manifest (its inventory digest recomputed) whose bin/app claims the shared library's hash.
        var files = manifest.Files.Select(f => f == app ? f with { Sha256 = other } : f).ToList();
        var edited = manifest with { Files = files, InventoryDigest = InventoryDigest.Of(files) };
        File.WriteAllBytes(Path.Combine(StoreRoot, results[1].ManifestPath), ManifestSerializer.Serialize(edited));
        // The compact encodings made from the signed bytes (2.0's own, and 3.0's patch against 2.0) no longer match them,
        // which verify reports on its own (whether 3.0's patch notices depends on what its matches reference); this test is about content.
        foreach (var encoding in Store.EnumerateManifestFiles("acme").Where(f => f.EndsWith(".zst", StringComparison.Ordinal)))
            Store.DeleteFile(encoding);

        var report = new StoreMaintenance(Store).Verify(contentKey: ProductKey); // no public key: the edit is not a signature finding
        var problem = Assert.Single(report.Problems);
        Assert.Contains("manifest acme/2.0: file 'bin/app' decrypts to SHA-256 " + app.Sha256 + ", the manifest says " + other, problem);
    }

    [Fact]
    public void Verify_finds_missing_chunks_and_bad_signatures()
    {
        var results = PublishThree();
        var victim = ManifestOf(results[0]).Files[0].Chunks[0].Id;
        File.Delete(Path.Combine(Store.Root, StoreLayout.ChunkPath(victim)));
        using var otherKey = ReleaseSigningKey.Generate();
        var report = new StoreMaintenance(Store).Verify(otherKey.PublicKey);
        Assert.Contains(report.Problems, p => p.Contains(victim.Hex) && p.Contains("missing"));
        Assert.Equal(3, report.Problems.Count(p => p.Contains("signature does not verify")));
    }

    [Fact]
    public void Gc_without_policy_removes_only_unreferenced_chunks_and_leftovers()
    {
        var results = PublishThree();
        var store = Store;
        var orphan = ChunkCodec.Encode(TestData.Random(5000, 999), ProductKey);
        store.PutChunkIfAbsent(orphan.Id, orphan.Stored);
        var temp = Path.Combine(store.Root, "chunks", "ab", "abc.tmp-123456");
        Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
        File.WriteAllBytes(temp, [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(store.Root, StoreLayout.PublishCacheFile + ".tmp-abcdef"), [4]);
        var chunksBefore = store.EnumerateChunks().ToHashSet();

        var report = new StoreMaintenance(store).CollectGarbage(new GcPolicy());

        Assert.Equal(1, report.ChunksDeleted);
        Assert.Equal(orphan.Stored.Length, report.BytesFreed);
        Assert.Equal(2, report.TempFilesDeleted);
        Assert.True(File.Exists(Path.Combine(store.Root, StoreLayout.PublishCacheFile)));
        Assert.Empty(report.VersionsRemoved);
        chunksBefore.Remove(orphan.Id);
        Assert.Equal(chunksBefore, store.EnumerateChunks().ToHashSet());
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
    }

    [Fact]
    public void Gc_keep_last_drops_old_versions_but_keeps_shared_and_pinned_chunks()
    {
        var results = PublishThree("stable"); // channel pins 1.0
        var store = Store;
        var v1 = ManifestOf(results[0]);
        var v2 = ManifestOf(results[1]);
        var v3 = ManifestOf(results[2]);

        var cacheBefore = PublishCache.Load(store).Count;
        Assert.Equal(store.EnumerateChunks().Count(), cacheBefore); // every stored chunk went through the cache
        var dry = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1, DryRun: true));
        Assert.Equal(["acme/2.0"], dry.VersionsRemoved);
        Assert.True(File.Exists(Path.Combine(store.Root, results[1].ManifestPath)));
        Assert.Equal(dry.ChunksDeleted, dry.PublishCacheEntriesDropped);
        Assert.Equal(cacheBefore, PublishCache.Load(store).Count); // a dry run writes nothing

        var report = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.Equal(["acme/2.0"], report.VersionsRemoved);
        Assert.Equal(2 + 2, report.ManifestFilesDeleted); // manifest, signature, whole compact frame, patch against 1.0
        var remaining = store.EnumerateChunks().ToHashSet();
        Assert.Equal(v1.DistinctChunks().Union(v3.DistinctChunks()).ToHashSet(), remaining);
        // v2's own binary chunks are gone; the library chunks it shared with v1 and v3 remain.
        Assert.DoesNotContain(v2.Files[0].Chunks[0].Id, remaining);
        Assert.Contains(v2.Files[1].Chunks[0].Id, remaining);
        // The publish cache keeps exactly the entries whose chunk is still stored.
        Assert.Equal(report.ChunksDeleted, report.PublishCacheEntriesDropped);
        Assert.Equal(remaining.Count, PublishCache.Load(store).Count);
        var index = ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath("acme"))!);
        Assert.Equal(["1.0", "3.0"], index.Versions.Select(v => v.Version));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
    }

    [Fact]
    public void Gc_refuses_to_sweep_when_a_retained_manifest_is_damaged()
    {
        var results = PublishThree();
        var store = Store;
        var orphan = ChunkCodec.Encode(TestData.Random(5000, 998), ProductKey);
        store.PutChunkIfAbsent(orphan.Id, orphan.Stored);
        File.WriteAllText(Path.Combine(store.Root, results[2].ManifestPath), "{broken");
        var before = TestData.Snapshot(store.Root);
        var ex = Assert.Throws<InvalidInputException>(() => new StoreMaintenance(store).CollectGarbage(new GcPolicy()));
        Assert.Contains("nothing was deleted", ex.Message);
        Assert.Equal(before, TestData.Snapshot(store.Root));
        Assert.Throws<InvalidInputException>(() => new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 0)));
    }
}
