using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Tests.Support;

namespace Orchestrator.ChunkStore.Tests.Publishing;

/// <summary>Publishing with a small-file stream (manifest schema 2) and the store tools reading it.</summary>
public sealed class SmallFilePublishTests : StoreTestBase
{
    private const int Threshold = 1024; // = Small.Min

    private string MakeTree(string name, int changedFrom = int.MaxValue)
    {
        var root = Dir.Sub(name);
        TestData.WriteFile(root, "bin/app", TestData.Random(60_000, 1));
        for (var i = 0; i < 120; i++)
            TestData.WriteFile(root, $"lib/m{i:D3}.js", TestData.Random(100 + i * 7, i >= changedFrom ? 5000 + i : 10 + i));
        TestData.WriteFile(root, "share/empty", []);
        return root;
    }

    private Manifest Publish(string version, string tree, int threshold = Threshold)
    {
        var result = new Publisher(OpenStore(), ProductKey, SigningKey)
            .Publish(new PublishRequest("acme", version, tree, Chunking: Small, Packs: true) { SmallFilesBelow = threshold });
        var store = OpenStore();
        return ManifestSigner.VerifyAndParse(store.ReadFile(result.ManifestPath)!, store.ReadFile(result.ManifestPath + ".sig")!, SigningKey.PublicKey);
    }

    private byte[] Decode(ManifestFile file)
    {
        var locator = new Orchestrator.ChunkStore.Packs.ChunkLocator(OpenStore(), reloadOnMiss: false);
        var content = new byte[file.Size];
        foreach (var p in file.Pieces())
            ChunkCodec.Decode(locator.Read(p.Chunk.Id)!, ProductKey, p.Chunk.Length, p.Chunk.Id).AsSpan(p.ChunkOffset, p.Length).CopyTo(content.AsSpan((int)p.FileOffset));
        return content;
    }

    [Fact]
    public void Small_files_go_into_one_stream_that_decodes_back_to_every_file()
    {
        var tree = MakeTree("v1");
        var m = Publish("1", tree);
        Assert.Equal(Manifest.StreamSchema, m.SchemaVersion);
        var inStream = m.Files.Where(f => f.InStream).ToList();
        Assert.Equal(120, inStream.Count);
        Assert.False(m.Files.Single(f => f.Path == "bin/app").InStream);
        Assert.False(m.Files.Single(f => f.Path == "share/empty").InStream);
        Assert.Equal(inStream.Sum(f => f.Size), m.Stream!.Size);
        // Far fewer chunks than files: the stream is cut like one big file.
        Assert.True(m.Stream.Chunks.Count < 40, $"{m.Stream.Chunks.Count} stream chunks");
        foreach (var f in m.Files)
        {
            var bytes = File.ReadAllBytes(Path.Combine(tree, f.Path));
            Assert.Equal(bytes, Decode(f));
            Assert.Equal(f.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        }
        var verify = new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        Assert.Equal(m.Files.Count, verify.FilesDecrypted);
    }

    [Fact]
    public void Below_two_small_files_or_without_the_option_the_manifest_stays_schema_1()
    {
        Assert.Equal(Manifest.Schema, Publish("1", MakeTree("v1"), threshold: 0).SchemaVersion);
        Assert.Equal(Manifest.Schema, Publish("2", MakeTree("v2"), threshold: 101).SchemaVersion); // only m000 (100 bytes) is below
    }

    [Fact]
    public void A_few_changed_small_files_add_only_the_stream_chunks_around_them_and_gc_verify_and_deltas_still_work()
    {
        var a = Publish("1", MakeTree("v1"));
        var b = Publish("2", MakeTree("v2", changedFrom: 117)); // the last three small files change
        var aIds = a.DistinctChunks();
        var newIds = b.Stream!.Chunks.Select(c => c.Id).Where(id => !aIds.Contains(id)).Distinct().ToList();
        Assert.InRange(newIds.Count, 1, 2);
        Assert.Equal(a.Stream!.Chunks.Take(b.Stream.Chunks.Count - 2).Select(c => c.Id), b.Stream.Chunks.Take(b.Stream.Chunks.Count - 2).Select(c => c.Id));

        // A device holding release 1 fetches only those (orch release plan).
        var plan = InstallFetchPlanner.Plan(OpenStore(), "acme", "1", "2", "chunks");
        Assert.Equal(newIds.Count, plan.Objects);

        // Deltas read files through their stream ranges.
        var delta = new DeltaBuilder(OpenStore(), ProductKey, SigningKey).Build("acme", "1", "2");
        Assert.False(delta.AlreadyBuilt);

        // gc keeps every stream chunk of the kept release.
        var gc = new StoreMaintenance(OpenStore()).CollectGarbage(new GcPolicy(KeepLast: 1));
        Assert.Equal(["acme/1"], gc.VersionsRemoved);
        var verify = new StoreMaintenance(OpenStore()).Verify(SigningKey.PublicKey, contentKey: ProductKey);
        Assert.True(verify.Ok, string.Join("\n", verify.Problems));
        foreach (var f in b.Files) Assert.Equal(f.Sha256, Convert.ToHexStringLower(SHA256.HashData(Decode(f))));
    }
}
