using System.Security.Cryptography;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Tests.Session;

public sealed class LocalChunkIndexTests
{
    private static readonly ChunkingOptions Small = new(1024, 4096, 16384);

    /// <summary>
    /// Chunk ids come from whatever zstd build the publisher used, so the index must match on the manifest's
    /// keyed tags alone: here the ids are unrelated to anything this process could encode, and a wrong tag or a
    /// wrong key must not match.
    /// </summary>
    [Fact]
    public void Local_chunks_are_found_by_tag_whatever_encoder_made_the_ids()
    {
        using var dir = new TempDir();
        var root = dir.Folder("client");
        var key = ContentKey.Generate();
        var content = RandomNumberGenerator.GetBytes(100_000);
        File.WriteAllBytes(Path.Combine(root, "old.bin"), content);

        var pieces = new List<(long Offset, byte[] Plain)>();
        long offset = 0;
        using (var ms = new MemoryStream(content))
            foreach (var p in new FastCdcChunker(Small).Chunks(ms)) { pieces.Add((offset, p.Span.ToArray())); offset += p.Length; }
        Assert.True(pieces.Count >= 4);

        // The new release: the first three pieces unchanged (ids from a "foreign" encoder), the fourth with a tag
        // computed under another key (must not match), plus one chunk the device does not have.
        var refs = pieces.Take(3).Select((p, i) => new ChunkRef(ChunkId.Of([(byte)i, 1]), p.Plain.Length, ChunkCodec.ManifestTag(p.Plain, key))).ToList();
        refs.Add(new ChunkRef(ChunkId.Of([9, 9]), pieces[3].Plain.Length, ChunkCodec.ManifestTag(pieces[3].Plain, ContentKey.Generate())));
        var absent = RandomNumberGenerator.GetBytes(2000);
        refs.Add(new ChunkRef(ChunkId.Of([7, 7]), absent.Length, ChunkCodec.ManifestTag(absent, key)));
        var file = new ManifestFile("new.bin", 420, refs.Sum(r => (long)r.Length), new string('0', 64), refs);
        var manifest = new Manifest("acme", "2", 2, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddDays(1), Small,
            InventoryDigest.Of([file]), [file], []);
        var inventory = new[] { new InventoryEntry("old.bin", Convert.ToHexStringLower(SHA256.HashData(content))) };

        var found = LocalChunkIndex.Build(root, inventory, manifest, key, refs.Select(r => r.Id).ToHashSet(), CancellationToken.None);

        Assert.Equal(3, found.Count);
        for (var i = 0; i < 3; i++)
        {
            var local = found[refs[i].Id];
            Assert.Equal(pieces[i].Offset, local.Offset);
            Assert.Equal(pieces[i].Plain.Length, local.Length);
            Assert.Equal(Path.Combine(root, "old.bin"), local.FullPath);
        }
        Assert.False(found.ContainsKey(refs[3].Id));
        Assert.False(found.ContainsKey(refs[4].Id));
    }

    /// <summary>
    /// A small-file stream chunk is found when the device holds every file it spans (by hash, at any path): its plaintext
    /// is the concatenation of those files' ranges. One spanned file missing, and the chunk is not local.
    /// </summary>
    [Fact]
    public void Stream_chunks_are_read_from_the_held_files_they_span_and_only_then()
    {
        using var dir = new TempDir();
        var root = dir.Folder("client");
        var key = ContentKey.Generate();
        var a = RandomNumberGenerator.GetBytes(700);
        var b = RandomNumberGenerator.GetBytes(900);
        var c = RandomNumberGenerator.GetBytes(500);
        var stream = a.Concat(b).Concat(c).ToArray();
        // Chunks [0,1000) spans a and b, [1000,2100) spans b and c.
        byte[] Slice(int from, int to) => stream[from..to];
        var s1 = new ChunkRef(ChunkId.Of([1]), 1000, ChunkCodec.ManifestTag(Slice(0, 1000), key));
        var s2 = new ChunkRef(ChunkId.Of([2]), 1100, ChunkCodec.ManifestTag(Slice(1000, 2100), key));
        var smallFiles = new SmallFileStream(2100, [s1, s2]);
        var starts = smallFiles.ChunkStarts();
        string Sha(byte[] x) => Convert.ToHexStringLower(SHA256.HashData(x));
        var files = new[]
        {
            smallFiles.Attach(new ManifestFile("a.js", 420, a.Length, Sha(a), []) { StreamOffset = 0 }, starts)!,
            smallFiles.Attach(new ManifestFile("b.js", 420, b.Length, Sha(b), []) { StreamOffset = 700 }, starts)!,
            smallFiles.Attach(new ManifestFile("c.js", 420, c.Length, Sha(c), []) { StreamOffset = 1600 }, starts)!,
        };
        var manifest = new Manifest("acme", "2", 2, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddDays(1), Small,
            InventoryDigest.Of(files), files, []) { Stream = smallFiles };
        // The device holds a and b under other names, and not c.
        File.WriteAllBytes(Path.Combine(root, "old-a.js"), a);
        File.WriteAllBytes(Path.Combine(root, "old-b.js"), b);
        var inventory = new[] { new InventoryEntry("old-a.js", Sha(a)), new InventoryEntry("old-b.js", Sha(b)) };

        var found = LocalChunkIndex.Build(root, inventory, manifest, key, new HashSet<ChunkId> { s1.Id, s2.Id }, CancellationToken.None);

        Assert.False(found.ContainsKey(s2.Id));
        var local = found[s1.Id];
        Assert.Equal(1000, local.Length);
        Assert.Equal([(Path.Combine(root, "old-a.js"), 0L, 700), (Path.Combine(root, "old-b.js"), 0L, 300)],
            local.Segments!.Select(p => (p.FullPath, p.Offset, p.Length)));
        var plain = new byte[1000];
        Assert.True(local.TryRead(plain));
        Assert.Equal(Slice(0, 1000), plain);
        Assert.Equal(s1.Tag, ChunkCodec.ManifestTag(plain, key));
    }
}
