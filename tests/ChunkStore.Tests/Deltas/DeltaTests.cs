using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Deltas;

public sealed class DeltaTests : StoreTestBase
{
    private FileSystemStore Store => OpenStore();

    // These tests are about per-file patches; ReleaseDeltaTests covers the whole-release stream and the auto choice.
    private DeltaBuilder Builder(int level = 3) => new(Store, ProductKey, SigningKey) { Level = level, Method = DeltaBuildMethod.Files };

    private void Publish(string version, Dictionary<string, byte[]> files)
    {
        var tree = Dir.Sub("tree-" + version);
        foreach (var (path, content) in files) TestData.WriteFile(tree, path, content);
        new Publisher(Store, ProductKey, SigningKey).Publish(new PublishRequest("acme", version, tree, Chunking: Small));
    }

    private Manifest ManifestOf(string version) => ManifestSerializer.Parse(Store.ReadFile(StoreLayout.ManifestPath("acme", version))!);

    private byte[] Content(Manifest manifest, string path)
    {
        var file = manifest.Files.Single(f => f.Path == path);
        return file.Chunks.SelectMany(c => ChunkCodec.Decode(Store.ReadChunk(c.Id)!, ProductKey, c.Length, c.Id)).ToArray();
    }

    [Fact]
    public void Patch_codec_round_trips_and_beats_plain_compression()
    {
        var old = TestData.Random(300_000, 1);
        var @new = Stamped(old, 2);
        var patch = PatchCodec.Create(old, @new, 3);
        Assert.True(patch.Length < 5_000, $"patch is {patch.Length} bytes");
        Assert.Equal(@new, PatchCodec.Apply(old, patch, @new.Length, PatchCodec.WindowLogFor(old.Length, @new.Length)));
        // A patch applied to other content, or told to expect another length, is refused.
        Assert.Throws<IntegrityException>(() => PatchCodec.Apply(old, patch, @new.Length - 1, 23));
        Assert.Equal(@new, PatchCodec.Apply(old, PatchCodec.Create([], @new, 1), @new.Length, 23).Length == @new.Length ? @new : null);
    }

    [Fact]
    public void Native_and_managed_patches_both_apply_with_the_managed_decoder()
    {
        var old = TestData.Random(2_000_000, 3);
        var @new = Stamped(old, 5);
        var window = PatchCodec.WindowLogFor(old.Length, @new.Length);
        var managed = PatchCodec.Create(old, @new, 19, forceManaged: true);
        Assert.Equal(@new, PatchCodec.Apply(old, managed, @new.Length, window));
        if (!Orchestrator.ChunkStore.Codec.ZstdEncoder.NativePatchAvailable) return; // no libzstd here: the managed path is the only one
        var native = PatchCodec.Create(old, @new, 19);
        Assert.Equal(@new, PatchCodec.Apply(old, native, @new.Length, window));
        Assert.True(native.Length < 20_000 && managed.Length < 20_000, $"native {native.Length}, managed {managed.Length}");
    }

    [Fact]
    public void Build_and_apply_round_trip_changed_added_removed_renamed_empty_and_large_files()
    {
        var app = TestData.Random(200_000, 10);
        var large = TestData.Random(20 * 1024 * 1024, 11); // the patch's window must cover 40 MiB
        var renamed = TestData.Random(50_000, 12);
        Publish("1.0", new()
        {
            ["bin/app"] = app, ["lib/large.bin"] = large, ["old/name.dat"] = renamed, ["gone.txt"] = TestData.Random(5_000, 13),
            ["same.txt"] = TestData.Random(9_000, 14), ["empty-later.txt"] = TestData.Random(4_000, 15), ["was-empty.txt"] = [],
        });
        Publish("1.1", new()
        {
            ["bin/app"] = Stamped(app, 2), ["lib/large.bin"] = Stamped(large, 2), ["new/name.dat"] = Stamped(renamed, 2),
            ["added.bin"] = TestData.Random(7_000, 16), ["same.txt"] = TestData.Random(9_000, 14), ["empty-later.txt"] = [],
            ["was-empty.txt"] = TestData.Random(3_000, 17),
        });

        var result = Builder().Build("acme", "1.0", "1.1");
        Assert.False(result.AlreadyBuilt);
        Assert.Equal("deltas/acme/1.0/1.1.json", result.ManifestPath);
        var delta = DeltaManifestSerializer.VerifyAndParse(Store.ReadFile(result.ManifestPath)!,
            Store.ReadFile(result.ManifestPath + ".sig")!, SigningKey.PublicKey);
        Assert.Equal(DeltaManifestSerializer.Serialize(result.Delta), DeltaManifestSerializer.Serialize(delta));
        Assert.Equal((1L, 2L), (delta.From.VersionId, delta.To.VersionId));

        // Unchanged and brand-new files are not listed; a renamed file patches from its old name.
        Assert.DoesNotContain(delta.Files, f => f.Path is "same.txt" or "added.bin" or "gone.txt");
        var byPath = delta.Files.ToDictionary(f => f.Path);
        Assert.Equal("old/name.dat", byPath["new/name.dat"].SourcePath);
        Assert.All(new[] { "bin/app", "lib/large.bin", "new/name.dat" }, p => Assert.Equal(DeltaMethod.Patch, byPath[p].Method));
        Assert.True(byPath["lib/large.bin"].WindowLog >= 26);
        Assert.True(result.PatchBytes < result.ChunkBytesReplaced / 20, $"{result.PatchBytes} vs {result.ChunkBytesReplaced}");

        var from = ManifestOf("1.0");
        var to = ManifestOf("1.1");
        foreach (var file in delta.Files)
        {
            var target = to.Files.Single(f => f.Path == file.Path);
            Assert.Equal(target.Sha256, file.Sha256);
            if (file.Method != DeltaMethod.Patch) continue;
            var rebuilt = DeltaApplier.Apply(file, Content(from, file.SourcePath), Store.ReadChunk, ProductKey);
            Assert.Equal(target.Sha256, Convert.ToHexStringLower(SHA256.HashData(rebuilt)));
        }
        // The now-empty file's content (zero bytes) is already in the source release (was-empty.txt): not listed, copied
        // locally. The formerly empty file is listed; patching from an empty source is plain compression.
        Assert.DoesNotContain("empty-later.txt", byPath.Keys);
        var wasEmpty = byPath["was-empty.txt"];
        Assert.Equal("was-empty.txt", wasEmpty.SourcePath);
        if (wasEmpty.Method == DeltaMethod.Patch)
            Assert.Equal(to.Files.Single(f => f.Path == "was-empty.txt").Sha256,
                Convert.ToHexStringLower(SHA256.HashData(DeltaApplier.Apply(wasEmpty, [], Store.ReadChunk, ProductKey))));

        // Idempotent: the second build finds the first one and writes nothing.
        var snapshot = TestData.Snapshot(Store.Root);
        var again = Builder().Build("acme", "1.0", "1.1");
        Assert.True(again.AlreadyBuilt);
        Assert.Equal(snapshot, TestData.Snapshot(Store.Root));
    }

    [Fact]
    public void Patch_is_refused_for_a_different_source_or_a_tampered_object()
    {
        var app = TestData.Random(100_000, 20);
        Publish("1", new() { ["app"] = app });
        Publish("2", new() { ["app"] = Stamped(app, 2) });
        var file = Builder().Build("acme", "1", "2").Delta.Files.Single();

        var wrongSource = (byte[])app.Clone();
        wrongSource[5] ^= 1;
        Assert.Throws<IntegrityException>(() => DeltaApplier.Apply(file, wrongSource, Store.ReadChunk, ProductKey));

        var part = file.Parts[0];
        var tampered = Store.ReadChunk(part.Id)!;
        tampered[^20] ^= 1;
        Assert.Throws<IntegrityException>(() => DeltaApplier.Apply(file, app, _ => tampered, ProductKey));
        Assert.Throws<IntegrityException>(() => DeltaApplier.Apply(file, app, _ => null, ProductKey));
        Assert.Throws<IntegrityException>(() => DeltaApplier.Apply(file, app, Store.ReadChunk, ContentKey.Generate()));
    }

    [Fact]
    public void Tampered_delta_manifest_is_rejected()
    {
        var app = TestData.Random(100_000, 30);
        Publish("1", new() { ["app"] = app });
        Publish("2", new() { ["app"] = Stamped(app, 2) });
        var result = Builder().Build("acme", "1", "2");
        var bytes = Store.ReadFile(result.ManifestPath)!;
        var signature = Store.ReadFile(result.ManifestPath + ".sig")!;

        var tampered = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes).Replace("\"size\":100000", "\"size\":100001"));
        Assert.NotEqual(bytes, tampered);
        Assert.Throws<IntegrityException>(() => DeltaManifestSerializer.VerifyAndParse(tampered, signature, SigningKey.PublicKey));
        using var other = ReleaseSigningKey.Generate();
        Assert.Throws<IntegrityException>(() => DeltaManifestSerializer.VerifyAndParse(bytes, signature, other.PublicKey));
        var spaced = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes).Replace(",", ", "));
        Assert.Throws<InvalidInputException>(() => DeltaManifestSerializer.Parse(spaced));

        // A damaged manifest in the store is rebuilt, not trusted.
        Store.WriteFile(result.ManifestPath, tampered);
        var rebuilt = Builder().Build("acme", "1", "2");
        Assert.False(rebuilt.AlreadyBuilt);
        Assert.Equal(bytes.Length, Store.ReadFile(result.ManifestPath)!.Length);
    }

    [Fact]
    public void Bad_input_is_rejected_without_changing_the_store()
    {
        Publish("1", new() { ["app"] = TestData.Random(10_000, 40) });
        Publish("2", new() { ["app"] = TestData.Random(10_000, 41) });
        var snapshot = TestData.Snapshot(Store.Root);
        Assert.Contains("--from", Assert.Throws<InvalidInputException>(() => Builder().Build("acme", "0.9", "2")).Message);
        Assert.Contains("--to", Assert.Throws<InvalidInputException>(() => Builder().Build("acme", "1", "3")).Message);
        Assert.Contains("not older", Assert.Throws<InvalidInputException>(() => Builder().Build("acme", "2", "1")).Message);
        Assert.Contains("not older", Assert.Throws<InvalidInputException>(() => Builder().Build("acme", "2", "2")).Message);
        Assert.Throws<InvalidInputException>(() => Builder().Build("nope", "1", "2"));
        Assert.Throws<InvalidInputException>(() => Builder().Build("acme", "../x", "2"));
        using var foreign = ReleaseSigningKey.Generate();
        Assert.Contains("does not verify", Assert.Throws<InvalidInputException>(() => new DeltaBuilder(Store, ProductKey, foreign).Build("acme", "1", "2")).Message);
        Assert.Equal(snapshot, TestData.Snapshot(Store.Root));
    }

    [Fact]
    public void Gc_keeps_patch_objects_of_retained_deltas_and_drops_deltas_of_dropped_versions()
    {
        var app = TestData.Random(100_000, 50);
        Publish("1", new() { ["app"] = app });
        Publish("2", new() { ["app"] = Stamped(app, 2) });
        Publish("3", new() { ["app"] = Stamped(app, 3) });
        var d12 = Builder().Build("acme", "1", "2");
        var d23 = Builder().Build("acme", "2", "3");

        var keepAll = new StoreMaintenance(Store).CollectGarbage(new GcPolicy());
        Assert.Equal(0, keepAll.ChunksDeleted);
        Assert.All(d12.Delta.DistinctObjects().Concat(d23.Delta.DistinctObjects()), id => Assert.True(Store.ChunkExists(id)));
        Assert.True(new StoreMaintenance(Store).Verify(SigningKey.PublicKey).Ok);

        new StoreMaintenance(Store).CollectGarbage(new GcPolicy(KeepLast: 2));
        Assert.False(Store.FileExists(d12.ManifestPath));
        Assert.False(Store.FileExists(d12.ManifestPath + ".sig"));
        Assert.All(d12.Delta.DistinctObjects(), id => Assert.False(Store.ChunkExists(id)));
        Assert.True(Store.FileExists(d23.ManifestPath));
        Assert.All(d23.Delta.DistinctObjects(), id => Assert.True(Store.ChunkExists(id)));
        Assert.True(new StoreMaintenance(Store).Verify(SigningKey.PublicKey).Ok);
    }

    [Fact]
    public void A_file_whose_patch_would_not_beat_its_chunks_is_marked_chunks()
    {
        // The new app is mostly the old library's content: chunk dedup finds it across files, a patch from the old app cannot.
        var lib = TestData.Random(80_000, 61);
        var newApp = (byte[])lib.Clone();
        newApp[70_000] ^= 1;
        Publish("1", new() { ["app"] = TestData.Random(80_000, 60), ["lib"] = lib });
        Publish("2", new() { ["app"] = newApp, ["lib"] = lib });
        var file = Builder().Build("acme", "1", "2").Delta.Files.Single();
        Assert.Equal("app", file.Path);
        Assert.Equal(DeltaMethod.Chunks, file.Method);
        Assert.Empty(file.Parts);
    }
}
