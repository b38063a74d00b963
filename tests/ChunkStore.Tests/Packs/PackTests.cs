using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Packs;

/// <summary>Pack objects and the signed pack index the publisher writes, their strict parse, and Range coalescing.</summary>
public sealed class PackTests : StoreTestBase
{
    private (Manifest Manifest, byte[] Bytes, PublishResult Result) Publish(string version, string tree, bool packs = true)
    {
        var store = OpenStore();
        var result = new Publisher(store, ProductKey, SigningKey).Publish(new PublishRequest("acme", version, tree, Chunking: Small, Packs: packs));
        var bytes = store.ReadFile(result.ManifestPath)!;
        return (ManifestSerializer.Parse(bytes), bytes, result);
    }

    private string Tree(string name, int version)
    {
        var root = Dir.Sub(name);
        TestData.WriteFile(root, "bin/app", Stamped(TestData.Random(200_000, 1), version));
        TestData.WriteFile(root, "lib/same.so", TestData.Random(50_000, 2));
        TestData.WriteFile(root, "etc/app.conf", System.Text.Encoding.UTF8.GetBytes($"release={version}\n"));
        return root;
    }

    private PackIndex ReadIndex(string version, Manifest manifest, byte[] manifestBytes) =>
        PackIndex.VerifyAndParse(OpenStore().ReadFile(StoreLayout.PackIndexPath("acme", version))!, SigningKey.PublicKey,
            PackIndex.ManifestHashOf(manifestBytes), PackIndex.ChunkOrder(manifest).Count);

    [Fact]
    public void Every_chunk_of_a_release_lies_byte_identical_in_a_pack_and_the_next_release_packs_only_its_new_chunks()
    {
        var (m1, b1, _) = Publish("1.0", Tree("v1", 1));
        var (m2, b2, _) = Publish("2.0", Tree("v2", 2));
        var store = OpenStore();
        foreach (var (m, b, v) in new[] { (m1, b1, "1.0"), (m2, b2, "2.0") })
        {
            var located = ReadIndex(v, m, b).Locate(PackIndex.ChunkOrder(m));
            Assert.Equal(m.DistinctChunks().Count, located.Count);
            foreach (var (id, at) in located)
            {
                var pack = store.ReadFile(StoreLayout.PackPath(at.Pack))!;
                Assert.Equal(at.Pack, ChunkId.Of(pack));
                Assert.Equal(store.ReadChunk(id), pack.AsSpan((int)at.Offset, at.Stored).ToArray());
            }
        }
        // 2.0's unchanged chunks keep 1.0's places; its new chunks lie in its own packs, contiguous in manifest order.
        var l1 = ReadIndex("1.0", m1, b1).Locate(PackIndex.ChunkOrder(m1));
        var l2 = ReadIndex("2.0", m2, b2).Locate(PackIndex.ChunkOrder(m2));
        var shared = m2.DistinctChunks().Intersect(m1.DistinctChunks()).ToList();
        Assert.NotEmpty(shared);
        Assert.All(shared, id => Assert.Equal(l1[id], l2[id]));
        var fresh = PackIndex.ChunkOrder(m2).Where(id => !m1.DistinctChunks().Contains(id)).Select(id => l2[id]).ToList();
        Assert.NotEmpty(fresh);
        Assert.Single(fresh.Select(c => c.Pack).Distinct());
        for (var i = 1; i < fresh.Count; i++) Assert.Equal(fresh[i - 1].Offset + fresh[i - 1].Stored, fresh[i].Offset);
        Assert.Equal(2, store.EnumeratePacks().Count());
    }

    [Fact]
    public void Packs_are_cut_at_the_size_limit()
    {
        var store = OpenStore();
        var (m, _, _) = Publish("1.0", Tree("v1", 1), packs: false);
        var order = PackIndex.ChunkOrder(m);
        var packs = ReleasePacker.Pack(store, order, null, maxPackBytes: 20_000);
        Assert.True(packs.Packs.Count > 3);
        Assert.All(packs.Packs, p => Assert.True(p.Length <= 20_000 || packs.Entries.Count(e => packs.Packs[e.Pack] == p) == 1));
        Assert.Equal(order.Count, packs.Entries.Count);
    }

    [Fact]
    public void The_index_is_refused_when_tampered_signed_by_another_key_for_another_manifest_or_not_canonical()
    {
        var (m1, b1, _) = Publish("1.0", Tree("v1", 1));
        var (m2, b2, _) = Publish("2.0", Tree("v2", 2));
        var signed = OpenStore().ReadFile(StoreLayout.PackIndexPath("acme", "1.0"))!;
        var count = PackIndex.ChunkOrder(m1).Count;
        var sha1 = PackIndex.ManifestHashOf(b1);
        Assert.NotEmpty(PackIndex.VerifyAndParse(signed, SigningKey.PublicKey, sha1, count).Entries);

        var flipped = (byte[])signed.Clone();
        flipped[60] ^= 1;
        Assert.Throws<IntegrityException>(() => PackIndex.VerifyAndParse(flipped, SigningKey.PublicKey, sha1, count));
        using var other = ReleaseSigningKey.Generate();
        Assert.Throws<IntegrityException>(() => PackIndex.VerifyAndParse(signed, other.PublicKey, sha1, count));
        var foreign = Assert.Throws<InvalidInputException>(() => PackIndex.VerifyAndParse(signed, SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), PackIndex.ChunkOrder(m2).Count));
        Assert.Contains("another release", foreign.Message);

        // Signed but invalid bodies: an unknown version, a trailing byte, an entry outside its pack.
        var body = signed[..^ManifestSigner.SignatureLength];
        byte[] Resign(byte[] b) => [.. b, .. ManifestSigner.Sign(b, SigningKey)];
        var v2 = (byte[])body.Clone(); v2[4] = 2;
        Assert.Contains("version 2", Assert.Throws<InvalidInputException>(() => PackIndex.VerifyAndParse(Resign(v2), SigningKey.PublicKey, sha1, count)).Message);
        Assert.Throws<InvalidInputException>(() => PackIndex.VerifyAndParse(Resign([.. body, 0]), SigningKey.PublicKey, sha1, count));
        var outside = (byte[])body.Clone();
        BitConverter.GetBytes(uint.MaxValue - 100).CopyTo(outside, body.Length - 8); // last entry's offset
        Assert.Contains("does not fit", Assert.Throws<InvalidInputException>(() => PackIndex.VerifyAndParse(Resign(outside), SigningKey.PublicKey, sha1, count)).Message);
        Assert.Throws<InvalidInputException>(() => PackIndex.VerifyAndParse(signed, SigningKey.PublicKey, sha1, count - 1));
    }

    private static PackedChunk At(ChunkId pack, int n, long offset, int stored) =>
        new(ChunkId.Of(BitConverter.GetBytes(n)), pack, offset, stored);

    [Fact]
    public void Coalescing_joins_neighbours_across_small_gaps_and_splits_at_large_gaps_other_packs_and_the_span_limit()
    {
        var a = ChunkId.Of([1]);
        var b = ChunkId.Of([2]);
        var ranges = PackRanges.Coalesce([
            At(a, 1, 0, 1000), At(a, 2, 1000, 1000), At(a, 3, 2000 + PackRanges.GapBytes, 500), // gap = limit: joined
            At(a, 4, 2500 + 2 * PackRanges.GapBytes + 1, 100),                                   // gap over the limit: new range
            At(b, 5, 0, 100), At(a, 1, 0, 1000)]);                                               // another pack; a duplicate
        Assert.Equal(3, ranges.Count);
        var first = ranges.Single(r => r.Pack == a && r.Offset == 0);
        Assert.Equal(2500 + PackRanges.GapBytes, first.Length);
        Assert.Equal(3, first.Chunks.Count);
        Assert.Single(ranges, r => r.Pack == a && r.Offset == 2500 + 2 * PackRanges.GapBytes + 1 && r.Length == 100);
        Assert.Single(ranges, r => r.Pack == b);

        var many = Enumerable.Range(0, 40).Select(i => At(a, i, i * 500_000L, 500_000)).ToList();
        var split = PackRanges.Coalesce(many);
        Assert.All(split, r => Assert.True(r.Length <= PackRanges.MaxRangeBytes));
        Assert.Equal(40, split.Sum(r => r.Chunks.Count));
        Assert.Equal(3, split.Count); // 20 MB in spans of at most 8 MiB (16 chunks of 500 kB)
    }

    [Fact]
    public void Release_plan_counts_pack_ranges_and_the_pack_index_and_without_packs_one_request_per_chunk()
    {
        Publish("1.0", Tree("v1", 1));
        var (m2, _, _) = Publish("2.0", Tree("v2", 2));
        var store = OpenStore();
        var plan = InstallFetchPlanner.Plan(store, "acme", "1.0", "2.0", "chunks");
        var fresh = m2.DistinctChunks().Count(id => !ManifestSerializer.Parse(store.ReadFile(StoreLayout.ManifestPath("acme", "1.0"))!).DistinctChunks().Contains(id));
        // manifest, signature, pack index, one range (the new chunks are contiguous in 2.0's pack).
        Assert.Equal(4, plan.Requests);
        Assert.Equal(fresh, plan.Objects);

        Publish("3.0", Tree("v3", 3), packs: false);
        var old = InstallFetchPlanner.Plan(store, "acme", "2.0", "3.0", "chunks");
        Assert.Equal(2 + 1 + old.Objects, old.Requests); // the 404 for the pack index, then one request per chunk
    }

    [Fact]
    public void Verify_checks_the_pack_index_and_every_located_range()
    {
        var (m, b, _) = Publish("1.0", Tree("v1", 1));
        var store = OpenStore();
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        var located = ReadIndex("1.0", m, b).Locate(PackIndex.ChunkOrder(m)).Values.First();
        var packFile = store.FullPath(StoreLayout.PackPath(located.Pack));
        var pack = File.ReadAllBytes(packFile);
        pack[located.Offset + 30] ^= 1;
        File.WriteAllBytes(packFile, pack);
        var report = new StoreMaintenance(store).Verify(SigningKey.PublicKey);
        Assert.Contains(report.Problems, p => p.Contains($"pack {located.Pack} is damaged"));
        using var other = ReleaseSigningKey.Generate();
        Assert.Contains(new StoreMaintenance(store).Verify(other.PublicKey).Problems, p => p.Contains("pack index refused"));
    }

    [Fact]
    public void Gc_keeps_the_packs_retained_releases_name_and_deletes_the_rest_with_their_index()
    {
        Publish("1.0", Tree("v1", 1));
        Publish("2.0", Tree("v2", 2));
        Publish("3.0", Tree("v3", 3));
        var store = OpenStore();
        Assert.Equal(3, store.EnumeratePacks().Count());
        var report = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.False(store.FileExists(StoreLayout.PackIndexPath("acme", "1.0")));
        Assert.True(store.FileExists(StoreLayout.PackIndexPath("acme", "3.0")));
        // 3.0 keeps 1.0's places for chunks unchanged since 1.0: exactly the packs its index names stay.
        var m3b = store.ReadFile(StoreLayout.ManifestPath("acme", "3.0"))!;
        var m3 = ManifestSerializer.Parse(m3b);
        var index = PackIndex.VerifyAndParse(store.ReadFile(StoreLayout.PackIndexPath("acme", "3.0"))!, SigningKey.PublicKey, PackIndex.ManifestHashOf(m3b), PackIndex.ChunkOrder(m3).Count);
        var named = index.Packs.Select(p => p.Id).ToHashSet();
        Assert.Equal(named, store.EnumeratePacks().ToHashSet());
        Assert.Equal(3 - named.Count, report.PacksDeleted);
        Assert.True(report.PacksDeleted >= 1);
    }
}
