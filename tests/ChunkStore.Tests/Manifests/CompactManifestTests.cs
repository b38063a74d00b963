using System.Security.Cryptography;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Manifests;

public sealed class CompactManifestTests : StoreTestBase
{
    /// <summary>Releases 1.0 .. n.0: a shared library, and an app binary of which each release changes one region.</summary>
    private List<PublishResult> Publish(FileSystemStore store, int count)
    {
        var shared = TestData.Random(200_000, 500);
        var app = TestData.Random(300_000, 1);
        var results = new List<PublishResult>();
        for (var v = 1; v <= count; v++)
        {
            var tree = Dir.Sub($"tree{v}");
            TestData.Random(5_000, 100 + v).CopyTo(app, 20_000 * v);
            TestData.WriteFile(tree, "bin/app", app);
            TestData.WriteFile(tree, "lib/shared.so", shared);
            results.Add(new Publisher(store, ProductKey, SigningKey).Publish(new PublishRequest("acme", $"{v}.0", tree, Chunking: Small)));
        }
        return results;
    }

    [Fact]
    public void Publish_writes_a_whole_frame_and_patches_against_the_previous_releases_that_decode_to_the_exact_signed_bytes()
    {
        var store = OpenStore();
        var r = Publish(store, 4);
        var json = store.ReadFile(r[3].ManifestPath)!;
        var whole = store.ReadFile(StoreLayout.CompactManifestPath(r[3].ManifestPath))!;
        Assert.True(whole.Length < json.Length, $"{whole.Length} vs {json.Length}");
        Assert.Equal(json, CompactManifest.Decode([], whole, json.Length));
        // Patches against the two newest earlier releases, none against older ones.
        foreach (var b in new[] { r[2], r[1] })
        {
            var patch = store.ReadFile(StoreLayout.ManifestPatchPath(r[3].ManifestPath, b.VersionId))!;
            Assert.True(patch.Length < whole.Length, $"patch {patch.Length} vs whole {whole.Length}");
            Assert.Equal(json, CompactManifest.Decode(store.ReadFile(b.ManifestPath)!, patch, json.Length));
        }
        Assert.False(store.FileExists(StoreLayout.ManifestPatchPath(r[3].ManifestPath, r[0].VersionId)));
        // The first release has nothing to patch against.
        Assert.Equal([StoreLayout.CompactManifestPath(r[0].ManifestPath)], CompactManifest.Offered(store, r[0].ManifestPath, 0));
        Assert.Equal([StoreLayout.ManifestPatchPath(r[3].ManifestPath, r[2].VersionId), StoreLayout.CompactManifestPath(r[3].ManifestPath)],
            CompactManifest.Offered(store, r[3].ManifestPath, r[2].VersionId));
        Assert.Equal([StoreLayout.CompactManifestPath(r[3].ManifestPath)], CompactManifest.Offered(store, r[3].ManifestPath, r[0].VersionId));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
    }

    [Fact]
    public void Decoding_is_bounded_by_the_pinned_length_and_refuses_a_wrong_reference_or_damaged_bytes()
    {
        var store = OpenStore();
        var r = Publish(store, 2);
        var json = store.ReadFile(r[1].ManifestPath)!;
        var reference = store.ReadFile(r[0].ManifestPath)!;
        var patch = store.ReadFile(StoreLayout.ManifestPatchPath(r[1].ManifestPath, r[0].VersionId))!;
        // A frame declaring more than the pinned length fails without growing the output; one producing fewer is refused.
        Assert.Throws<IntegrityException>(() => CompactManifest.Decode(reference, patch, json.Length - 1));
        Assert.Throws<IntegrityException>(() => CompactManifest.Decode(reference, patch, json.Length + 1));
        var bomb = CompactManifest.Encode([], new byte[8 << 20]);
        Assert.True(bomb.Length < 4096);
        Assert.Throws<IntegrityException>(() => CompactManifest.Decode([], bomb, json.Length));
        // Against another reference the content checksum (or the length) refuses it; a flipped bit is refused or, where it
        // falls in a field the decoder does not need (a frame header's spare bits), still yields exactly the manifest:
        // never other bytes.
        var wrong = (byte[])reference.Clone();
        wrong[wrong.Length / 2] ^= 1;
        Assert.ThrowsAny<Exception>(() =>
        {
            var decoded = CompactManifest.Decode(wrong, patch, json.Length);
            Assert.Equal(SHA256.HashData(json), SHA256.HashData(decoded));
        });
        var refusedFlips = 0;
        for (var at = 0; at < patch.Length; at += Math.Max(1, patch.Length / 7))
        {
            var damaged = (byte[])patch.Clone();
            damaged[at] ^= 0x40;
            byte[]? decoded = null;
            try { decoded = CompactManifest.Decode(reference, damaged, json.Length); }
            catch (IntegrityException) { refusedFlips++; }
            Assert.True(decoded is null || decoded.AsSpan().SequenceEqual(json), $"flip at {at} decoded to {decoded?.Length} bytes that are not the manifest");
        }
        Assert.True(refusedFlips >= 4, $"only {refusedFlips} of 8 flipped patches were refused");
        Assert.Throws<IntegrityException>(() => CompactManifest.Decode(reference, [], json.Length));
        Assert.Throws<IntegrityException>(() => CompactManifest.Decode(reference, patch, 0));
    }

    [Fact]
    public void Verify_finds_a_damaged_encoding_and_gc_removes_the_encodings_of_dropped_releases_but_keeps_patches_against_them()
    {
        var store = OpenStore();
        var r = Publish(store, 3);
        var patchPath = StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[1].VersionId);
        var good = store.ReadFile(patchPath)!;
        var damaged = (byte[])good.Clone();
        damaged[damaged.Length / 2] ^= 0x10;
        store.WriteFile(patchPath, damaged);
        var report = new StoreMaintenance(store).Verify(SigningKey.PublicKey);
        Assert.Contains(report.Problems, p => p.Contains(patchPath, StringComparison.Ordinal));
        store.WriteFile(patchPath, good);
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);

        var gc = new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 2));
        Assert.Equal(["acme/1.0"], gc.VersionsRemoved);
        Assert.False(store.FileExists(StoreLayout.CompactManifestPath(r[0].ManifestPath)));
        Assert.False(store.FileExists(r[0].ManifestPath));
        // Devices still on 1.0 hold its manifest: the kept releases' patches against it stay.
        Assert.True(store.FileExists(StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[0].VersionId)));
        Assert.True(store.FileExists(StoreLayout.ManifestPatchPath(r[1].ManifestPath, r[0].VersionId)));
        Assert.True(store.FileExists(patchPath));
        Assert.True(store.FileExists(StoreLayout.CompactManifestPath(r[2].ManifestPath)));
        Assert.True(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Ok);
        // Such a patch can only be checked for its declared length: one declaring another length is reported.
        var orphan = StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[0].VersionId);
        store.WriteFile(orphan, CompactManifest.Encode([], new byte[100]));
        Assert.Contains(new StoreMaintenance(store).Verify(SigningKey.PublicKey).Problems, p => p.Contains(orphan, StringComparison.Ordinal));
        // gc of 2.0 takes its encodings with it.
        new StoreMaintenance(store).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.False(store.FileExists(StoreLayout.ManifestPatchPath(r[1].ManifestPath, r[0].VersionId)));
        Assert.False(store.FileExists(StoreLayout.CompactManifestPath(r[1].ManifestPath)));
        Assert.True(store.FileExists(patchPath));
    }

    [Fact]
    public void Release_plan_counts_the_patch_against_the_source_manifest_instead_of_the_json()
    {
        var store = OpenStore();
        var r = Publish(store, 3);
        var json = store.ReadFile(r[2].ManifestPath)!.Length;
        var patch = store.ReadFile(StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[1].VersionId))!.Length;
        var whole = store.ReadFile(StoreLayout.CompactManifestPath(r[2].ManifestPath))!.Length;
        var withPatch = InstallFetchPlanner.Plan(store, "acme", "2.0", "3.0", "chunks");
        store.DeleteFile(StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[1].VersionId));
        var withWhole = InstallFetchPlanner.Plan(store, "acme", "2.0", "3.0", "chunks");
        store.DeleteFile(StoreLayout.CompactManifestPath(r[2].ManifestPath));
        var plain = InstallFetchPlanner.Plan(store, "acme", "2.0", "3.0", "chunks");
        Assert.Equal(plain.Requests, withPatch.Requests);
        Assert.Equal(plain.Bytes - json + patch, withPatch.Bytes);
        Assert.Equal(plain.Bytes - json + whole, withWhole.Bytes);
    }

    [Fact]
    public void An_encoding_is_kept_only_when_smaller_than_what_it_replaces_and_a_delta_build_adds_a_missing_patch_once()
    {
        var store = OpenStore();
        var random = TestData.Random(3_000, 9); // incompressible, and unrelated to its "base": nothing is smaller
        var path = StoreLayout.ManifestPath("acme", "9.0");
        Assert.Empty(CompactManifest.Write(store, path, random, [(1, TestData.Random(3_000, 10))]));
        Assert.False(store.FileExists(StoreLayout.CompactManifestPath(path)));

        var r = Publish(store, 3);
        var patch = StoreLayout.ManifestPatchPath(r[2].ManifestPath, r[0].VersionId);
        var json = store.ReadFile(r[2].ManifestPath)!;
        var reference = store.ReadFile(r[0].ManifestPath)!;
        Assert.Null(CompactManifest.WritePatchIfAbsent(store, r[2].ManifestPath, json, r[0].VersionId, reference));
        store.DeleteFile(patch);
        Assert.Equal(patch, CompactManifest.WritePatchIfAbsent(store, r[2].ManifestPath, json, r[0].VersionId, reference));
        Assert.Equal(json, CompactManifest.Decode(reference, store.ReadFile(patch)!, json.Length));
        Assert.Equal(json.Length, CompactManifest.DeclaredLength(store.ReadFile(patch)!));
    }
}
