using System.Diagnostics;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Publishing;

public sealed class PublisherTests : StoreTestBase
{
    private Publisher NewPublisher(IContentStore? store = null) => new(store ?? OpenStore(), ProductKey, SigningKey);

    private PublishRequest Request(string version, string tree, long? id = null, string? channel = null) =>
        new("acme", version, tree, id, channel, Chunking: Small);

    /// <summary>A release tree: a big binary, a small config, an empty file, a nested file and a symlink.</summary>
    private string MakeTree(string name, int seed, byte[]? bigOverride = null)
    {
        var root = Dir.Sub(name);
        TestData.WriteFile(root, "bin/app", bigOverride ?? TestData.Random(300_000, 1));
        TestData.WriteFile(root, "etc/app.conf", System.Text.Encoding.UTF8.GetBytes($"release={seed}\n"));
        TestData.WriteFile(root, "share/empty", []);
        TestData.WriteFile(root, "share/doc/readme.txt", TestData.Random(20_000, 100 + seed));
        File.SetUnixFileMode(Path.Combine(root, "bin/app"), (UnixFileMode)0b111_101_101);
        File.CreateSymbolicLink(Path.Combine(root, "bin/current"), "app");
        return root;
    }

    [Fact]
    public void Publishes_a_tree_that_decodes_back_exactly()
    {
        var tree = MakeTree("v1", 1);
        var result = NewPublisher().Publish(Request("1.0.0", tree, channel: "stable"));

        Assert.Equal(1, result.VersionId);
        Assert.Equal(4, result.Files);
        Assert.Equal(1, result.Symlinks);
        Assert.Equal(result.ChunksDistinct, result.ChunksNew);
        var store = OpenStore();
        var manifestBytes = store.ReadFile(result.ManifestPath)!;
        var manifest = ManifestSigner.VerifyAndParse(manifestBytes, store.ReadFile(result.ManifestPath + ".sig")!, SigningKey.PublicKey);
        Assert.Equal(["bin/app", "etc/app.conf", "share/doc/readme.txt", "share/empty"], manifest.Files.Select(f => f.Path));
        Assert.Equal(493, manifest.Files[0].Mode);
        Assert.Equal(new ManifestSymlink("bin/current", "app"), Assert.Single(manifest.Symlinks));
        Assert.Empty(manifest.Files[3].Chunks);
        foreach (var file in manifest.Files)
        {
            var plains = file.Chunks.Select(c => ChunkCodec.Decode(store.ReadChunk(c.Id)!, ProductKey, c.Length, c.Id)).ToList();
            Assert.Equal(File.ReadAllBytes(Path.Combine(tree, file.Path)), plains.SelectMany(p => p).ToArray());
            // Each chunk's manifest tag names its plaintext (what agents match local pieces against).
            Assert.Equal(plains.Select(p => ChunkCodec.ManifestTag(p, ProductKey)), file.Chunks.Select(c => c.Tag));
        }
        var index = ReleaseIndex.Parse(store.ReadFile(StoreLayout.IndexPath("acme"))!);
        Assert.Equal("1.0.0", index.Latest!.Version);
        var channel = ChannelPointer.Parse(store.ReadFile(StoreLayout.ChannelPath("acme", "stable"))!);
        Assert.Equal(1, channel.VersionId);
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        // Layout is the static-mirror layout.
        var someChunk = manifest.Files[0].Chunks[0].Id.Hex;
        Assert.True(File.Exists(Path.Combine(StoreRoot, "chunks", someChunk[..2], someChunk)));
    }

    [Fact]
    public void Successive_versions_dedup_and_write_only_absent_chunks()
    {
        var big = TestData.Random(300_000, 1);
        var first = NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1, big)));
        var chunkFilesAfterFirst = TestData.Snapshot(Path.Combine(StoreRoot, "chunks"));

        // v2: 100 bytes inserted in the middle of the binary, different config.
        var big2 = big[..150_000].Concat(TestData.Random(100, 9)).Concat(big[150_000..]).ToArray();
        var second = NewPublisher().Publish(Request("1.1.0", MakeTree("v2", 2, big2)));

        Assert.Equal(2, second.VersionId);
        Assert.True(second.ChunksNew <= 6, $"expected only the chunks near the change to be new, got {second.ChunksNew} of {second.ChunksDistinct}");
        Assert.True(second.BytesNew < first.BytesNew / 3);
        var chunkFilesAfterSecond = TestData.Snapshot(Path.Combine(StoreRoot, "chunks"));
        // Existing chunk objects were not rewritten, and exactly ChunksNew objects were added.
        foreach (var (path, hash) in chunkFilesAfterFirst) Assert.Equal(hash, chunkFilesAfterSecond[path]);
        Assert.Equal(second.ChunksNew, chunkFilesAfterSecond.Count(kv => !kv.Key.EndsWith('/')) - chunkFilesAfterFirst.Count(kv => !kv.Key.EndsWith('/')));

        // Republishing identical content under a new version writes nothing but metadata.
        var third = NewPublisher().Publish(Request("1.1.1", Dir.Sub("v2")));
        Assert.Equal(0, third.ChunksNew);
        Assert.Equal(0, third.BytesNew);
    }

    [Fact]
    public void Publish_cache_skips_known_chunks_but_never_trusts_a_missing_object_or_a_damaged_cache()
    {
        var tree = MakeTree("v1", 1);
        var first = NewPublisher().Publish(Request("1.0.0", tree));
        Assert.True(File.Exists(Path.Combine(StoreRoot, StoreLayout.PublishCacheFile)));

        // Stale entry: the object was deleted behind the cache's back; the chunk must be stored again.
        var store = OpenStore();
        var victim = ManifestSerializer.Parse(store.ReadFile(first.ManifestPath)!).Files[0].Chunks[0].Id;
        File.Delete(Path.Combine(StoreRoot, StoreLayout.ChunkPath(victim)));
        var second = NewPublisher().Publish(Request("1.0.1", tree));
        Assert.Equal(1, second.ChunksNew);
        Assert.True(store.ChunkExists(victim));

        // Garbage cache: ignored, publish still correct and still deduplicated.
        File.WriteAllBytes(Path.Combine(StoreRoot, StoreLayout.PublishCacheFile), [1, 2, 3]);
        var third = NewPublisher().Publish(Request("1.0.2", tree));
        Assert.Equal(0, third.ChunksNew);
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);

        // Another content key never hits the cache (tags are keyed): its chunks are all new objects.
        var other = new Publisher(OpenStore(), ContentKey.Generate(), SigningKey).Publish(Request("1.0.3", tree));
        Assert.Equal(other.ChunksDistinct, other.ChunksNew);
    }

    [Fact]
    public void Progress_is_reported_up_to_the_total()
    {
        var reports = new List<PublishProgress>();
        var progress = new SynchronousProgress<PublishProgress>(reports.Add);
        var result = NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1)), progress);
        Assert.NotEmpty(reports);
        Assert.Equal(result.BytesTotal, reports[^1].BytesDone);
        Assert.Equal(reports[^1].BytesTotal, reports[^1].BytesDone);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Cancelling_mid_publish_stops_every_worker_and_commits_nothing(int parallelism)
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1)));
        var indexBefore = File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme")));
        var tree = MakeTree("v2", 2, TestData.Random(600_000, 5)); // ~150 chunks of ~4 KiB: several progress reports
        using var cancel = new CancellationTokenSource();
        var publisher = new Publisher(OpenStore(), ProductKey, SigningKey) { Parallelism = parallelism };

        Assert.ThrowsAny<OperationCanceledException>(() =>
            publisher.Publish(Request("2.0.0", tree), new SynchronousProgress<PublishProgress>(_ => cancel.Cancel()), cancel.Token));

        // Publish returned only after its workers stopped: no temp file is left, the index is untouched, the store
        // verifies, and the same publish then succeeds.
        var store = OpenStore();
        Assert.Empty(store.EnumerateTempFiles());
        Assert.Equal(indexBefore, File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme"))));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        Assert.Equal(2, NewPublisher().Publish(Request("2.0.0", tree)).VersionId);
    }

    [Fact]
    public void Version_id_must_increase_and_versions_are_unique()
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1), id: 10));
        var before = TestData.Snapshot(StoreRoot);
        var tree = MakeTree("v2", 2);
        var ex = Assert.Throws<InvalidInputException>(() => NewPublisher().Publish(Request("2.0.0", tree, id: 10)));
        Assert.Contains("not greater than the latest version ID 10", ex.Message);
        Assert.Contains("--version-id 11", ex.Message);
        Assert.Throws<InvalidInputException>(() => NewPublisher().Publish(Request("2.0.0", tree, id: 3)));
        ex = Assert.Throws<InvalidInputException>(() => NewPublisher().Publish(Request("1.0.0", tree)));
        Assert.Contains("already published", ex.Message);
        Assert.Equal(before, TestData.Snapshot(StoreRoot));
        Assert.Equal(11, NewPublisher().Publish(Request("2.0.0", tree)).VersionId);
    }

    public static TheoryData<string, string> BadTrees() => new()
    {
        { "backslash", "not allowed" },
        { "escaping-symlink", "points outside the tree" },
        { "absolute-symlink", "absolute" },
        { "chained-symlink", "resolves outside the tree" },
        { "symlink-loop", "more than 40 links" },
        { "dangling-symlink", "dangles: the tree holds nothing at 'bin/nothing'" },
        { "fifo", "not a regular file" },
        { "newline", "control character" },
        { "missing", "is not a directory" },
    };

    [Theory]
    [MemberData(nameof(BadTrees))]
    public void Bad_trees_are_rejected_and_the_store_is_unchanged(string kind, string expected)
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1)));
        var before = TestData.Snapshot(StoreRoot);
        var tree = MakeTree("bad", 2);
        switch (kind)
        {
            case "backslash": TestData.WriteFile(tree, "a\\..\\b", [1]); break;
            case "escaping-symlink": File.CreateSymbolicLink(Path.Combine(tree, "bin/evil"), "../../../etc/passwd"); break;
            case "absolute-symlink": File.CreateSymbolicLink(Path.Combine(tree, "bin/evil"), "/etc/passwd"); break;
            case "chained-symlink":
                File.CreateSymbolicLink(Path.Combine(tree, "bin/up"), "..");
                File.CreateSymbolicLink(Path.Combine(tree, "bin/evil"), "up/../etc/passwd");
                break;
            case "symlink-loop":
                File.CreateSymbolicLink(Path.Combine(tree, "bin/p"), "q");
                File.CreateSymbolicLink(Path.Combine(tree, "bin/q"), "p");
                break;
            case "dangling-symlink": File.CreateSymbolicLink(Path.Combine(tree, "bin/link"), "nothing"); break;
            case "fifo":
                using (var mkfifo = Process.Start("mkfifo", Path.Combine(tree, "pipe")))
                {
                    mkfifo.WaitForExit();
                    Assert.Equal(0, mkfifo.ExitCode);
                }
                break;
            case "newline": TestData.WriteFile(tree, "bad\nname", [1]); break;
            case "missing": tree = Dir.Sub("does-not-exist"); break;
        }
        var ex = Assert.Throws<InvalidInputException>(() => NewPublisher().Publish(Request("2.0.0", tree)));
        Assert.Contains(expected, ex.Message);
        Assert.Equal(before, TestData.Snapshot(StoreRoot));
    }

    [Fact]
    public void Unreadable_file_is_rejected_before_any_write()
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1)));
        var before = TestData.Snapshot(StoreRoot);
        var tree = MakeTree("v2", 2);
        // Root bypasses file permissions, so simulate the permission failure at the open call.
        var publisher = new Publisher(OpenStore(), ProductKey, SigningKey)
        {
            OpenFile = path => path.EndsWith("readme.txt", StringComparison.Ordinal)
                ? throw new UnauthorizedAccessException("Access to the path is denied.")
                : ReleaseTree.DefaultOpenRead(path),
        };
        var ex = Assert.Throws<InvalidInputException>(() => publisher.Publish(Request("2.0.0", tree)));
        Assert.Contains("readme.txt", ex.Message);
        Assert.Contains("cannot be read", ex.Message);
        Assert.Equal(before, TestData.Snapshot(StoreRoot));
    }

    [Theory]
    [InlineData("Acme", "1.0", "Product name")]
    [InlineData("acme", "../1", "Version")]
    [InlineData("acme", "index", "Version")]
    [InlineData("/abs", "1.0", "Product name")]
    public void Bad_names_are_rejected_without_creating_the_store(string product, string version, string expected)
    {
        var tree = MakeTree("v1", 1);
        var ex = Assert.Throws<InvalidInputException>(() => NewPublisher().Publish(new PublishRequest(product, version, tree)));
        Assert.Contains(expected, ex.Message);
        Assert.False(Directory.Exists(StoreRoot));
    }

    [Fact]
    public void Crash_mid_publish_leaves_a_valid_store_and_the_publish_can_be_rerun()
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1), channel: "stable"));
        var indexBefore = File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme")));
        var tree = MakeTree("v2", 2, TestData.Random(400_000, 77));

        var failing = new FailingStore(OpenStore(), failAfterPuts: 5);
        Assert.Throws<IOException>(() => NewPublisher(failing).Publish(Request("2.0.0", tree, channel: "stable")));
        Assert.True(failing.Puts >= 5);

        // The store still verifies, still lists only 1.0.0, and the channel still points at it.
        var store = OpenStore();
        var report = new StoreMaintenance(store).Verify(SigningKey.PublicKey);
        Assert.True(report.Ok, string.Join("\n", report.Problems));
        Assert.Equal(indexBefore, File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme"))));
        Assert.Equal(1, ChannelPointer.Parse(store.ReadFile(StoreLayout.ChannelPath("acme", "stable"))!).VersionId);

        // Crash after the manifest but before the index commit: still invisible, still valid.
        var lateFailing = new FailingStore(OpenStore(), failOnIndexWrite: true);
        Assert.Throws<IOException>(() => NewPublisher(lateFailing).Publish(Request("2.0.0", tree)));
        Assert.True(File.Exists(Path.Combine(StoreRoot, "manifests/acme/2.0.0.json")));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        Assert.Equal(indexBefore, File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme"))));

        // A rerun completes, reusing the chunks the crashed runs already stored.
        var rerun = NewPublisher().Publish(Request("2.0.0", tree, channel: "stable"));
        Assert.Equal(0, rerun.ChunksNew);
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        Assert.Equal(2, ChannelPointer.Parse(store.ReadFile(StoreLayout.ChannelPath("acme", "stable"))!).VersionId);
    }

    [Fact]
    public void Crash_mid_packs_publish_leaves_a_valid_store_and_the_rerun_stores_each_chunk_once()
    {
        NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1)) with { Packs = true });
        var indexBefore = File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme")));
        var tree = MakeTree("v2", 2, TestData.Random(400_000, 77));
        var store = OpenStore();
        var packsBefore = store.EnumeratePacks().ToHashSet();

        // The disk fills while the pack is written: nothing refers to a half-written pack.
        var failing = new FailingStore(OpenStore(), failAfterPuts: 0);
        Assert.Throws<IOException>(() => NewPublisher(failing).Publish(Request("2.0.0", tree) with { Packs = true }));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey).Ok);
        Assert.Equal(packsBefore, store.EnumeratePacks().ToHashSet());

        // Crash after pack, manifest and pack index but before the index commit: invisible; the rerun reuses that pack.
        Assert.Throws<IOException>(() => NewPublisher(new FailingStore(OpenStore(), failOnIndexWrite: true)).Publish(Request("2.0.0", tree) with { Packs = true }));
        Assert.Equal(indexBefore, File.ReadAllBytes(Path.Combine(StoreRoot, StoreLayout.IndexPath("acme"))));
        var packsAfterCrash = store.EnumeratePacks().ToHashSet();
        var rerun = NewPublisher().Publish(Request("2.0.0", tree) with { Packs = true });
        Assert.Equal(0, rerun.ChunksNew);
        Assert.Equal(packsAfterCrash, store.EnumeratePacks().ToHashSet());
        Assert.Empty(store.EnumerateChunks());
        var report = new StoreMaintenance(store).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(report.Ok, string.Join("\n", report.Problems));
    }

    [Fact]
    public void Second_writer_is_refused_while_the_lock_is_held()
    {
        var store = OpenStore();
        using (store.AcquireWriterLock())
        {
            var ex = Assert.Throws<StoreBusyException>(() => NewPublisher().Publish(Request("1.0.0", MakeTree("v1", 1))));
            Assert.Contains("locked", ex.Message);
        }
        NewPublisher().Publish(Request("1.0.0", Dir.Sub("v1")));
    }

    /// <summary>Decorates a real store and fails like a full disk or a killed process would.</summary>
    private sealed class FailingStore(IContentStore inner, int failAfterPuts = int.MaxValue, bool failOnIndexWrite = false) : IContentStore
    {
        private int _puts;
        public int Puts => _puts;
        public bool ChunkExists(ChunkId id) => inner.ChunkExists(id);
        public bool PutChunkIfAbsent(ChunkId id, ReadOnlySpan<byte> stored)
        {
            if (Interlocked.Increment(ref _puts) > failAfterPuts) throw new IOException("injected failure: disk full");
            return inner.PutChunkIfAbsent(id, stored);
        }
        public byte[]? ReadChunk(ChunkId id) => inner.ReadChunk(id);
        public bool FileExists(string relativePath) => inner.FileExists(relativePath);
        public byte[]? ReadFile(string relativePath) => inner.ReadFile(relativePath);
        public byte[]? ReadFileRange(string relativePath, long offset, int length) => inner.ReadFileRange(relativePath, offset, length);
        public IReadOnlyList<string> EnumeratePackIndexFiles() => inner.EnumeratePackIndexFiles();
        public bool PutObjectIfAbsent(string relativePath, ReadOnlySpan<byte> content)
        {
            if (Interlocked.Increment(ref _puts) > failAfterPuts) throw new IOException("injected failure: disk full");
            return inner.PutObjectIfAbsent(relativePath, content);
        }
        public void WriteFile(string relativePath, ReadOnlySpan<byte> content)
        {
            if (failOnIndexWrite && relativePath.EndsWith("index.json", StringComparison.Ordinal)) throw new IOException("injected failure before commit");
            inner.WriteFile(relativePath, content);
        }
        public void Flush() => inner.Flush();
        public IDisposable AcquireWriterLock() => inner.AcquireWriterLock();
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
