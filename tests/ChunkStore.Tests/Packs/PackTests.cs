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
    public void Every_chunk_of_a_release_lies_once_in_a_pack_and_the_next_release_packs_only_its_new_chunks()
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
                Assert.True(id.Matches(pack.AsSpan((int)at.Offset, at.Stored)));
                Assert.Null(store.ReadChunk(id)); // the pack is the only copy
                Assert.Equal(pack.AsSpan((int)at.Offset, at.Stored).ToArray(), new ChunkLocator(store).Read(id));
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
        Assert.Empty(store.EnumerateChunks());
        var stats = new StoreMaintenance(store).Stats();
        Assert.Equal(0, stats.ChunkBytes);
        Assert.Equal(store.EnumeratePacks().Sum(p => new FileInfo(store.FullPath(StoreLayout.PackPath(p))).Length), stats.PackBytes);
    }

    [Fact]
    public void Pack_contents_do_not_depend_on_encode_thread_timing()
    {
        var tree = Tree("v1", 1);
        var ids = new List<HashSet<ChunkId>>();
        foreach (var parallelism in new[] { 1, 4 })
        {
            var store = FileSystemStore.Open(Dir.Sub($"store-{parallelism}"), create: true);
            new Publisher(store, ProductKey, SigningKey) { Parallelism = parallelism }.Publish(new PublishRequest("acme", "1.0", tree, Chunking: Small, Packs: true));
            ids.Add(store.EnumeratePacks().ToHashSet());
        }
        Assert.Equal(ids[0], ids[1]);
    }

    [Fact]
    public void Packs_are_cut_at_the_size_limit_and_chunks_offered_out_of_order_are_packed_in_sequence()
    {
        var store = OpenStore();
        var writer = new PackWriter(store, maxPackBytes: 20_000);
        var chunks = Enumerable.Range(0, 12).Select(i => TestData.Random(6_000 + i, 10 + i)).ToList();
        var order = new[] { 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10 };
        foreach (var i in order) writer.Offer(i, ChunkId.Of(chunks[i]), chunks[i], append: i != 5); // 5: held already
        writer.Complete();
        Assert.Equal(11, writer.Written.Count);
        Assert.True(writer.Packs.Count > 3);
        Assert.All(writer.Packs, p => Assert.True(p.Length <= 20_000));
        var placed = Enumerable.Range(0, 12).Where(i => i != 5).Select(i => writer.Written[ChunkId.Of(chunks[i])]).ToList();
        for (var i = 1; i < placed.Count; i++)
            Assert.True(placed[i].Pack == placed[i - 1].Pack ? placed[i].Offset == placed[i - 1].Offset + placed[i - 1].Stored : placed[i].Offset == 0);
        foreach (var c in placed) Assert.True(c.Chunk.Matches(store.ReadFileRange(StoreLayout.PackPath(c.Pack), c.Offset, c.Stored)));
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
        // manifest, signature, the 404 for the chunk patch index (none built), pack index, one range (the new chunks are
        // contiguous in 2.0's pack).
        Assert.Equal(5, plan.Requests);
        Assert.Equal(fresh, plan.Objects);

        Publish("3.0", Tree("v3", 3), packs: false);
        var old = InstallFetchPlanner.Plan(store, "acme", "2.0", "3.0", "chunks");
        Assert.Equal(2 + 2 + old.Objects, old.Requests); // the 404s for the chunk patch index and the pack index, then one request per chunk
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

    [Fact]
    public void Gc_after_dropping_a_release_keeps_every_chunk_of_the_kept_ones_and_a_partly_live_pack_whole()
    {
        var (m1, _, _) = Publish("1.0", Tree("v1", 1));
        Publish("2.0", Tree("v2", 2));
        Publish("3.0", Tree("v3", 3));
        var store = OpenStore();
        var packOf1 = store.EnumeratePacks().Single(p => ReadIndexAt(store, "1.0").Packs.Select(x => x.Id).Contains(p) && ReadIndexAt(store, "2.0").Packs.Select(x => x.Id).Contains(p));

        var report = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 2));
        Assert.Equal(["acme/1.0"], report.VersionsRemoved);
        // 1.0's pack still holds lib/same.so, which 2.0 and 3.0 use: kept whole, its 1.0-only chunks counted as dead bytes.
        Assert.Contains(packOf1, store.EnumeratePacks());
        Assert.Equal(0, report.PacksDeleted);
        Assert.True(report.PacksPartlyLive >= 1);
        var live = new[] { "2.0", "3.0" }.SelectMany(v => ReadIndexAt(store, v).Entries.Select(e => (ReadIndexAt(store, v).Packs[e.Pack].Id, e.Offset, e.Stored))).Distinct()
            .Where(r => r.Id == packOf1).Sum(r => (long)r.Stored);
        Assert.True(report.PackBytesUnreferenced >= new FileInfo(store.FullPath(StoreLayout.PackPath(packOf1))).Length - live);
        var dropped = m1.DistinctChunks().Except(ManifestSerializer.Parse(store.ReadFile(StoreLayout.ManifestPath("acme", "2.0"))!).DistinctChunks())
            .Except(ManifestSerializer.Parse(store.ReadFile(StoreLayout.ManifestPath("acme", "3.0"))!).DistinctChunks());
        Assert.NotEmpty(dropped);
        var verify = new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        Assert.True(verify.FilesDecrypted > 0);

        // Once no kept release locates anything in it, the pack goes.
        var last = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.Equal(ReadIndexAt(store, "3.0").Packs.Select(p => p.Id).ToHashSet(), store.EnumeratePacks().ToHashSet());
        Assert.True(last.PacksDeleted >= 1);
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey).Ok);
    }

    [Fact]
    public void Gc_deletes_nothing_a_kept_release_needs_when_a_pack_is_missing_its_chunks_are_reported()
    {
        Publish("1.0", Tree("v1", 1));
        var store = OpenStore();
        var pack = store.EnumeratePacks().First();
        File.Delete(store.FullPath(StoreLayout.PackPath(pack)));
        var verify = new StoreMaintenance(store).Verify(SigningKey.PublicKey);
        Assert.Contains(verify.Problems, p => p.Contains($"pack {pack} is missing"));
        Assert.Contains(verify.Problems, p => p.Contains("which is missing (no chunk object, and the release's pack index does not locate it)"));
    }

    [Fact]
    public void Stores_published_before_keep_working_objects_stay_objects_and_only_chunks_new_to_the_store_are_packed()
    {
        // 1.0 as a store before packs (chunk objects only); 1.5 as a store of the previous generation (objects and packs).
        var (m1, _, _) = Publish("1.0", Tree("v1", 1), packs: false);
        var store = OpenStore();
        var objects1 = store.EnumerateChunks().ToHashSet();
        var (m15, _, _) = Publish("1.5", Tree("v15", 15));
        foreach (var (id, at) in ReadIndexAt(store, "1.5").Locate(PackIndex.ChunkOrder(m15)))
            store.PutChunkIfAbsent(id, store.ReadFileRange(StoreLayout.PackPath(at.Pack), at.Offset, at.Stored));
        var (m2, b2, r2) = Publish("2.0", Tree("v2", 2));

        // Chunks the store held as objects stay objects (no second copy); the rest lie once, in packs.
        Assert.Equal(objects1.Count + ReadIndexAt(store, "1.5").Entries.Count, store.EnumerateChunks().Count());
        var index2 = ReadIndex("2.0", m2, b2).Locate(PackIndex.ChunkOrder(m2));
        Assert.All(m2.DistinctChunks(), id => Assert.True(store.ChunkExists(id) ^ index2.ContainsKey(id)));
        Assert.NotEmpty(index2);
        Assert.Contains(m2.DistinctChunks(), objects1.Contains);
        Assert.Equal(r2.ChunksNew, index2.Count);

        var verify = new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        var plan = InstallFetchPlanner.Plan(store, "acme", "1.0", "2.0", "chunks");
        Assert.Equal(m2.DistinctChunks().Except(m1.DistinctChunks()).Count(), plan.Objects);

        new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        verify = new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        var locator = new ChunkLocator(store);
        Assert.All(m2.DistinctChunks(), id => Assert.NotNull(locator.Read(id)));
    }

    [Fact]
    public void A_serving_locator_finds_chunks_of_releases_published_after_it_was_built()
    {
        var store = OpenStore();
        var locator = new ChunkLocator(store);
        Publish("1.0", Tree("v1", 1));
        Assert.NotNull(locator.Read(PackIndex.ChunkOrder(ManifestSerializer.Parse(store.ReadFile(StoreLayout.ManifestPath("acme", "1.0"))!))[0]));
        var (m2, _, _) = Publish("2.0", Tree("v2", 2));
        Assert.All(m2.DistinctChunks(), id => Assert.NotNull(locator.Read(id)));
        Assert.Null(locator.Read(ChunkId.Of([1, 2, 3])));
        Assert.Null(locator.Locate(ChunkId.Of([1, 2, 3])));
        var at = locator.Locate(m2.DistinctChunks().First())!.Value;
        Assert.NotNull(at.Pack);
        Assert.True(at.Chunk.Matches(store.ReadFileRange(StoreLayout.PackPath(at.Pack!.Value), at.Offset, at.Stored)));

        // gc under a serving locator: every chunk of the kept release is still read, through the map it had built.
        new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.All(m2.DistinctChunks(), id => Assert.NotNull(locator.Read(id)));
    }

    [Fact]
    public void A_miss_after_a_publish_parses_only_the_new_index_and_a_miss_on_an_unchanged_store_parses_none()
    {
        var store = OpenStore();
        Publish("1.0", Tree("v1", 1));
        var locator = new ChunkLocator(store);
        Assert.Null(locator.Read(ChunkId.Of([1, 2, 3])));
        Assert.Equal(1, locator.IndexLoads);

        for (var i = 0; i < 20; i++) Assert.Null(locator.Locate(ChunkId.Of([9, (byte)i])));
        Assert.Equal(1, locator.IndexLoads);

        var (m2, _, _) = Publish("2.0", Tree("v2", 2));
        Assert.All(m2.DistinctChunks(), id => Assert.NotNull(locator.Read(id)));
        Assert.Equal(2, locator.IndexLoads);
    }

    [Fact]
    public void A_damaged_pack_range_asked_for_again_and_again_re_reads_its_index_at_most_once_per_interval()
    {
        var store = OpenStore();
        var (m1, _, _) = Publish("1.0", Tree("v1", 1));
        var clock = new SteppedClock();
        var locator = new ChunkLocator(store, staleRangeRecheck: TimeSpan.FromSeconds(1), clock: clock);
        var victim = m1.DistinctChunks().First();
        var at = locator.LocateInPack(victim)!.Value;
        var packPath = Path.Combine(StoreRoot, StoreLayout.PackPath(at.Pack));
        var pack = File.ReadAllBytes(packPath);
        pack[at.Offset + at.Stored / 2] ^= 0xFF;
        File.WriteAllBytes(packPath, pack);
        var loadsBefore = locator.IndexLoads;

        for (var i = 0; i < 50; i++) Assert.Null(locator.Read(victim));
        Assert.Equal(loadsBefore + 1, locator.IndexLoads);

        clock.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Null(locator.Read(victim));
        Assert.Equal(loadsBefore + 1, locator.IndexLoads);

        clock.Advance(TimeSpan.FromMilliseconds(2));
        Assert.Null(locator.Read(victim));
        Assert.Equal(loadsBefore + 2, locator.IndexLoads);

        // Intact chunks of the same pack are still served while the damaged one is refused.
        Assert.All(m1.DistinctChunks().Where(c => c != victim && locator.LocateInPack(c)?.Pack == at.Pack),
            id => Assert.NotNull(locator.Read(id)));
    }

    [Fact]
    public void Misses_waiting_while_another_thread_lists_the_indexes_take_its_answer_instead_of_listing_again()
    {
        Publish("1.0", Tree("v1", 1));
        var gated = new ListingGateStore(OpenStore());
        var locator = new ChunkLocator(gated);
        Assert.Null(locator.Locate(ChunkId.Of([7])));
        var listingsBefore = locator.Listings;

        gated.Hold();
        var first = new Thread(() => locator.Locate(ChunkId.Of([8])));
        first.Start();
        Assert.True(gated.Entered.Wait(TimeSpan.FromSeconds(10)), "the first miss did not start listing");
        var waiters = Enumerable.Range(0, 4).Select(i => new Thread(() => locator.Locate(ChunkId.Of([9, (byte)i])))).ToList();
        waiters.ForEach(t => t.Start());
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (waiters.Any(t => (t.ThreadState & ThreadState.WaitSleepJoin) == 0) && DateTime.UtcNow < deadline) Thread.Sleep(5);
        gated.Release();
        Assert.True(first.Join(TimeSpan.FromSeconds(10)));
        Assert.All(waiters, t => Assert.True(t.Join(TimeSpan.FromSeconds(10))));

        // The waiters began before the held listing did, so one of them lists again; the others take that answer.
        Assert.Equal(listingsBefore + 2, locator.Listings);
    }

    private sealed class SteppedClock : TimeProvider
    {
        private long _ticks = 1_000_000;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Interlocked.Read(ref _ticks);
        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }

    /// <summary>A store whose pack index listing can be held open, to line up misses behind it.</summary>
    private sealed class ListingGateStore(FileSystemStore inner) : IContentStore
    {
        private readonly ManualResetEventSlim _open = new(true);
        public ManualResetEventSlim Entered { get; } = new(false);
        public void Hold() { _open.Reset(); Entered.Reset(); }
        public void Release() => _open.Set();
        public IReadOnlyList<string> EnumeratePackIndexFiles()
        {
            Entered.Set();
            _open.Wait(TimeSpan.FromSeconds(30));
            return inner.EnumeratePackIndexFiles();
        }
        public bool ChunkExists(ChunkId id) => inner.ChunkExists(id);
        public bool PutChunkIfAbsent(ChunkId id, ReadOnlySpan<byte> stored) => inner.PutChunkIfAbsent(id, stored);
        public byte[]? ReadChunk(ChunkId id) => inner.ReadChunk(id);
        public bool FileExists(string relativePath) => inner.FileExists(relativePath);
        public byte[]? ReadFile(string relativePath) => inner.ReadFile(relativePath);
        public byte[]? ReadFileRange(string relativePath, long offset, int length) => inner.ReadFileRange(relativePath, offset, length);
        public bool PutObjectIfAbsent(string relativePath, ReadOnlySpan<byte> content) => inner.PutObjectIfAbsent(relativePath, content);
        public void WriteFile(string relativePath, ReadOnlySpan<byte> content) => inner.WriteFile(relativePath, content);
        public void Flush() => inner.Flush();
        public IDisposable AcquireWriterLock() => inner.AcquireWriterLock();
    }

    private PackIndex ReadIndexAt(FileSystemStore store, string version)
    {
        var bytes = store.ReadFile(StoreLayout.ManifestPath("acme", version))!;
        return ReadIndex(version, ManifestSerializer.Parse(bytes), bytes);
    }
}
