using System.Buffers.Binary;
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

/// <summary>Chunk patches: what <see cref="ChunkPatchBuilder"/> stores, the signed index's round trip and strict parse.</summary>
public sealed class ChunkPatchTests : StoreTestBase
{
    private readonly Dictionary<string, string> _trees = [];

    private (Manifest Manifest, byte[] Bytes) Publish(string version, int stamp)
    {
        var root = Dir.Sub("tree-" + version);
        TestData.WriteFile(root, "bin/app", Stamped(TestData.Random(200_000, 1), stamp));
        TestData.WriteFile(root, "lib/same.so", TestData.Random(50_000, 2));
        TestData.WriteFile(root, "etc/app.conf", System.Text.Encoding.UTF8.GetBytes($"release={version}\n"));
        _trees[version] = root;
        var store = OpenStore();
        var result = new Publisher(store, ProductKey, SigningKey).Publish(new PublishRequest("acme", version, root, Chunking: Small, Packs: true));
        var bytes = store.ReadFile(result.ManifestPath)!;
        return (ManifestSerializer.Parse(bytes), bytes);
    }

    private byte[] SignedIndex() => OpenStore().ReadFile(StoreLayout.ChunkPatchIndexPathFor(StoreLayout.ManifestPath("acme", "2.0")))!;

    private ChunkPatchBuildResult Build(string? baseVersion = null) =>
        new ChunkPatchBuilder(OpenStore(), ProductKey, SigningKey) { Level = 9 }.Build("acme", "2.0", baseVersion);

    [Fact]
    public void Each_patch_rebuilds_its_chunk_from_the_base_files_bytes_and_is_smaller_than_the_chunk()
    {
        var (m1, _) = Publish("1.0", 1);
        var (m2, b2) = Publish("2.0", 2);
        var result = Build();
        Assert.False(result.AlreadyBuilt);
        Assert.Equal("1.0", result.BaseVersion);
        var index = ChunkPatchIndex.VerifyAndParse(SignedIndex(), SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), PackIndex.ChunkOrder(m2).Count);
        Assert.Equal(result.Patched, index.Entries.Count);
        Assert.True(index.Entries.Count >= 10, $"{index.Entries.Count} patches");
        Assert.True(result.PatchBytes * 3 < result.ChunkBytesReplaced, $"{result.PatchBytes} vs {result.ChunkBytesReplaced}");
        Assert.Equal(PackIndex.ManifestHashOf(OpenStore().ReadFile(StoreLayout.ManifestPath("acme", "1.0"))!), index.BaseManifestSha256);
        var app1 = m1.Files.Single(f => f.Path == "bin/app");
        Assert.Equal(new PatchBase(app1.Sha256, app1.Size), Assert.Single(index.Bases));

        var store = OpenStore();
        var baseFile = File.ReadAllBytes(Path.Combine(_trees["1.0"], "bin/app"));
        var chunks = m2.Files.SelectMany(f => f.Chunks).DistinctBy(c => c.Id).ToDictionary(c => c.Id);
        foreach (var (id, p) in index.Resolve(PackIndex.ChunkOrder(m2)))
        {
            var stored = store.ReadFileRange(StoreLayout.PackPath(p.Patch.Pack), p.Patch.Offset, p.Patch.Stored)!;
            Assert.True(p.Patch.Chunk.Matches(stored));
            var patch = ChunkCodec.Decode(stored, ProductKey, p.PatchLength, p.Patch.Chunk);
            var plain = PatchCodec.Apply(baseFile.AsSpan((int)p.BaseOffset, p.BaseLength), patch, chunks[id].Length, ChunkPatchIndex.WindowLog);
            Assert.Equal(chunks[id].Tag, ChunkCodec.ManifestTag(plain, ProductKey));
            Assert.True(p.Patch.Stored < new ChunkLocator(store).StoredLength(id));
        }
        // Idempotent.
        Assert.True(Build().AlreadyBuilt);
    }

    [Fact]
    public void Gc_keeps_the_patch_packs_of_a_retained_release()
    {
        Publish("1.0", 1);
        Publish("2.0", 2);
        Build();
        var packs = ChunkPatchIndex.Parse(SignedIndex().AsSpan(0, SignedIndex().Length - 64), int.MaxValue).Packs;
        new StoreMaintenance(OpenStore()).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.All(packs, p => Assert.True(OpenStore().FileExists(StoreLayout.PackPath(p.Id))));
        Assert.NotNull(SignedIndex());
    }

    [Fact]
    public void Bad_input_names_the_problem_and_writes_nothing()
    {
        Publish("1.0", 1);
        var first = Assert.Throws<InvalidInputException>(() => new ChunkPatchBuilder(OpenStore(), ProductKey, SigningKey).Build("acme", "1.0", null));
        Assert.Contains("first release", first.Message);
        Assert.Contains("--base", first.Message);
        Publish("2.0", 2);
        var packsBefore = OpenStore().EnumeratePacks().Count();
        Assert.Contains("check --base", Assert.Throws<InvalidInputException>(() => Build("0.9")).Message);
        Assert.Contains("check --version", Assert.Throws<InvalidInputException>(() =>
            new ChunkPatchBuilder(OpenStore(), ProductKey, SigningKey).Build("acme", "3.0", null)).Message);
        Assert.Contains("--version itself", Assert.Throws<InvalidInputException>(() => Build("2.0")).Message);
        Assert.Equal(packsBefore, OpenStore().EnumeratePacks().Count());
        Assert.False(OpenStore().FileExists(StoreLayout.ChunkPatchIndexPathFor(StoreLayout.ManifestPath("acme", "2.0"))));
    }

    [Fact]
    public void The_signed_index_round_trips_and_refuses_tampering_a_wrong_key_and_another_manifest()
    {
        var (_, b1) = Publish("1.0", 1);
        var (m2, b2) = Publish("2.0", 2);
        Build();
        var signed = SignedIndex();
        var count = PackIndex.ChunkOrder(m2).Count;
        var index = ChunkPatchIndex.VerifyAndParse(signed, SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), count);
        Assert.Equal(signed, index.SerializeSigned(SigningKey));
        for (var at = 0; at < signed.Length; at += 97)
        {
            var flipped = (byte[])signed.Clone();
            flipped[at] ^= 1;
            Assert.Throws<IntegrityException>(() => ChunkPatchIndex.VerifyAndParse(flipped, SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), count));
        }
        using var other = ReleaseSigningKey.Generate();
        Assert.Throws<IntegrityException>(() => ChunkPatchIndex.VerifyAndParse(signed, other.PublicKey, PackIndex.ManifestHashOf(b2), count));
        var foreign = Assert.Throws<InvalidInputException>(() => ChunkPatchIndex.VerifyAndParse(signed, SigningKey.PublicKey, PackIndex.ManifestHashOf(b1), count));
        Assert.Contains("another release's index", foreign.Message);
        // A chunk count the entries exceed (the index of a larger manifest) is refused too.
        Assert.Throws<InvalidInputException>(() => ChunkPatchIndex.VerifyAndParse(signed, SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), index.Entries[^1].Chunk));
    }

    /// <summary>Re-signs a modified body, so only the strict parse stands between it and a device.</summary>
    private byte[] Resign(byte[] signed, Action<byte[]> change)
    {
        var body = signed[..^ManifestSigner.SignatureLength];
        change(body);
        return [.. body, .. ManifestSigner.Sign(body, SigningKey)];
    }

    [Fact]
    public void A_signed_but_malformed_index_is_refused_by_the_strict_parse()
    {
        Publish("1.0", 1);
        var (m2, b2) = Publish("2.0", 2);
        Build();
        var signed = SignedIndex();
        var count = PackIndex.ChunkOrder(m2).Count;
        var sha = PackIndex.ManifestHashOf(b2);
        void Refused(string expect, Action<byte[]> change) =>
            Assert.Contains(expect, Assert.Throws<InvalidInputException>(() => ChunkPatchIndex.VerifyAndParse(Resign(signed, change), SigningKey.PublicKey, sha, count)).Message);
        const int header = 84, baseRecord = 40, packRecord = 36;
        var index = ChunkPatchIndex.VerifyAndParse(signed, SigningKey.PublicKey, sha, count);
        var entries = header + index.Bases.Count * baseRecord + index.Packs.Count * packRecord;
        Refused("format version 2", b => b[4] = 2);
        Refused("reserved bytes", b => b[6] = 1);
        Refused("not a chunk patch index", b => b[0] = (byte)'X');
        Refused("declares", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(80), (uint)index.Entries.Count + 1));
        Refused("not sorted", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(entries + 64), (uint)index.Entries[0].Chunk));
        Refused("base region", b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(entries + 8), (ulong)index.Bases[0].Length));
        Refused("base region", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(entries + 16), ChunkPatchIndex.MaxBaseRegion + 1));
        Refused("does not fit a patch object", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(entries + 24), (uint)index.Packs[0].Length));
        Refused("names base", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(entries + 4), 7));
        Assert.Throws<InvalidInputException>(() => ChunkPatchIndex.VerifyAndParse(signed[..40], SigningKey.PublicKey, sha, count));
    }
    [Fact]
    public void Store_verify_checks_every_patch_and_with_the_content_key_rebuilds_each_chunk_from_the_base_release()
    {
        Publish("1.0", 1);
        var (m2, b2) = Publish("2.0", 2);
        Build();
        var signed = SignedIndex();
        var index = ChunkPatchIndex.VerifyAndParse(signed, SigningKey.PublicKey, PackIndex.ManifestHashOf(b2), PackIndex.ChunkOrder(m2).Count);
        Assert.True(index.Entries.Count >= 2);
        var good = new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(good.Ok, string.Join("\n", good.Problems));
        Assert.Equal(index.Entries.Count, good.ChunkPatchesRebuilt);
        Assert.Equal(0, new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey).ChunkPatchesRebuilt);

        // Patches that hash to their ids and are validly signed but rebuild other chunks: only applying them shows it.
        var indexPath = StoreLayout.ChunkPatchIndexPathFor(StoreLayout.ManifestPath("acme", "2.0"));
        var entries = 84 + index.Bases.Count * 40 + index.Packs.Count * 36;
        OpenStore().WriteFile(indexPath, Resign(signed, b =>
        {
            var first = b.AsSpan(entries + 20, 44).ToArray();
            b.AsSpan(entries + 64 + 20, 44).CopyTo(b.AsSpan(entries + 20));
            first.CopyTo(b.AsSpan(entries + 64 + 20));
        }));
        var swapped = new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.Equal(index.Entries.Count - 2, swapped.ChunkPatchesRebuilt);
        Assert.Equal(2, swapped.Problems.Count(p => p.Contains("chunk patch for chunk")));
        Assert.True(new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey).Ok, "without the content key the swap is not visible");

        // A tampered index is refused as an agent refuses it: by its signature with the keys, by its parse without.
        var tampered = (byte[])signed.Clone();
        tampered[0] ^= 1;
        OpenStore().WriteFile(indexPath, tampered);
        Assert.Contains(new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey).Problems, p => p.Contains("chunk patch index refused"));
        Assert.Contains(new StoreMaintenance(OpenStore()).Verify().Problems, p => p.Contains("chunk patch index refused"));

        // A damaged patch pack is named.
        OpenStore().WriteFile(indexPath, signed);
        var packPath = OpenStore().FullPath(StoreLayout.PackPath(index.Packs[0].Id));
        var pack = File.ReadAllBytes(packPath);
        pack[pack.Length / 2] ^= 1;
        File.WriteAllBytes(packPath, pack);
        Assert.Contains(new StoreMaintenance(OpenStore()).Verify().Problems, p => p.Contains($"chunk patch pack {index.Packs[0].Id} is damaged"));
    }
}
