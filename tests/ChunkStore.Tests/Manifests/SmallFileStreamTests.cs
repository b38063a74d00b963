using System.Text;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Manifests;

/// <summary>Manifest schema 2: the small-file stream's canonical form and every rule checked at parse.</summary>
public class SmallFileStreamTests
{
    private static readonly ChunkId S1 = ChunkId.Of([1]);
    private static readonly ChunkId S2 = ChunkId.Of([2]);
    private static readonly ChunkId Big = ChunkId.Of([3]);
    private const string T1 = "0123456789abcdef0123456789abcdef";
    private const string T2 = "fedcba9876543210fedcba9876543210";
    private const string T3 = "00112233445566778899aabbccddeeff";

    private static string Sha(char c) => new(c, 64);

    /// <summary>Stream of 150 bytes in two chunks (100 + 50); files a [0,30), b [30,130) spanning both, c [130,150); 'big' chunked on its own.</summary>
    internal static Manifest Sample()
    {
        var stream = new SmallFileStream(150, [new ChunkRef(S1, 100, T1), new ChunkRef(S2, 50, T2)]);
        var starts = stream.ChunkStarts();
        ManifestFile Small(string path, long offset, long size, char sha) =>
            stream.Attach(new ManifestFile(path, 420, size, Sha(sha), []) { StreamOffset = offset }, starts)!;
        var files = new List<ManifestFile>
        {
            Small("a", 0, 30, 'a'),
            Small("b", 30, 100, 'b'),
            new("big", 493, 70000, Sha('d'), [new ChunkRef(Big, 70000, T3)]),
            Small("c", 130, 20, 'c'),
            new("empty", 420, 0, Sha('e'), []),
        };
        return new Manifest("acme", "2.0.0", 9,
            new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero), new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            ChunkingOptions.Default, InventoryDigest.Of(files), files, []) { Stream = stream };
    }

    private static string Text() => Encoding.UTF8.GetString(ManifestSerializer.Serialize(Sample()));

    [Fact]
    public void Schema_2_round_trips_and_maps_each_file_to_its_range()
    {
        var bytes = ManifestSerializer.Serialize(Sample());
        var text = Encoding.UTF8.GetString(bytes);
        Assert.StartsWith("{\"schema\":2,", text);
        Assert.Contains($"\"stream\":{{\"size\":150,\"chunks\":[{{\"id\":\"{S1.Hex}\",\"length\":100,\"tag\":\"{T1}\"}},{{\"id\":\"{S2.Hex}\",\"length\":50,\"tag\":\"{T2}\"}}]}},\"files\":[", text);
        Assert.Contains($"{{\"path\":\"b\",\"mode\":420,\"size\":100,\"sha256\":\"{Sha('b')}\",\"offset\":30}}", text);
        var parsed = ManifestSerializer.Parse(bytes);
        Assert.Equal(bytes, ManifestSerializer.Serialize(parsed));
        Assert.Equal(Manifest.StreamSchema, parsed.SchemaVersion);
        var b = parsed.Files[1];
        Assert.Equal([new FilePiece(b.Chunks[0], 0, 30, 70), new FilePiece(b.Chunks[1], 70, 0, 30)], b.Pieces());
        Assert.Equal([S1, S2], b.Chunks.Select(c => c.Id));
        Assert.Equal([new FilePiece(parsed.Files[3].Chunks[0], 0, 30, 20)], parsed.Files[3].Pieces());
        Assert.Equal([S1, S2, Big], Orchestrator.ChunkStore.Packs.PackIndex.ChunkOrder(parsed));
        Assert.Equal(3, parsed.DistinctChunks().Count);
    }

    [Fact]
    public void Schema_1_is_still_written_for_a_manifest_without_a_stream()
    {
        Assert.StartsWith("{\"schema\":1,", Encoding.UTF8.GetString(ManifestSerializer.Serialize(ManifestTests.Sample())));
    }

    /// <summary>Each variant is well-formed canonical JSON (it could be signed); each breaks one rule of the stream.</summary>
    public static TheoryData<string, string, string> Malformed() => new()
    {
        { "gap between ranges", "\"offset\":30}", "\"offset\":31}" },
        { "overlapping ranges", "\"offset\":130}", "\"offset\":129}" },
        { "first range not at 0", "\"size\":30,\"sha256\":\"" + Sha('a') + "\",\"offset\":0}", "\"size\":30,\"sha256\":\"" + Sha('a') + "\",\"offset\":1}" },
        { "stream size not the chunk sum", "\"stream\":{\"size\":150", "\"stream\":{\"size\":151" },
        { "range beyond the stream", "\"size\":20,\"sha256\":\"" + Sha('c') + "\",\"offset\":130}", "\"size\":21,\"sha256\":\"" + Sha('c') + "\",\"offset\":130}" },
        { "empty stream file", "\"size\":20,\"sha256\":\"" + Sha('c') + "\",\"offset\":130}", "\"size\":0,\"sha256\":\"" + Sha('c') + "\",\"offset\":130}" },
        { "negative offset", "\"offset\":0}", "\"offset\":-1}" },
        { "unknown schema", "{\"schema\":2,", "{\"schema\":3," },
        { "stream in schema 1", "{\"schema\":2,", "{\"schema\":1," },
        { "zero-length stream chunk", "\"length\":50,", "\"length\":0," },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Every_broken_stream_rule_is_refused_at_parse(string why, string from, string to)
    {
        var text = Text();
        Assert.Contains(from, text);
        var changed = text.Replace(from, to, StringComparison.Ordinal);
        var e = Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(changed)));
        Assert.False(string.IsNullOrEmpty(e.Message), why);
    }

    [Fact]
    public void Stream_files_sizes_must_sum_to_the_stream()
    {
        // Drop the last stream file: the remaining ranges are contiguous but end before the stream does.
        var m = Sample();
        var files = m.Files.Where(f => f.Path != "c").ToList();
        var e = Assert.Throws<InvalidInputException>(() => ManifestSerializer.Serialize(m with { Files = files, InventoryDigest = InventoryDigest.Of(files) }));
        Assert.Contains("sum to 130, not the stream's size 150", e.Message);
        var text = Text();
        var cut = text.Replace($",{{\"path\":\"c\",\"mode\":420,\"size\":20,\"sha256\":\"{Sha('c')}\",\"offset\":130}}", "", StringComparison.Ordinal);
        Assert.NotEqual(text, cut);
        Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(cut)));
    }

    [Fact]
    public void Model_rules_refuse_wrong_covering_chunks_strays_and_an_empty_stream()
    {
        var m = Sample();
        var wrong = m.Files.Select(f => f.Path == "b" ? f with { Chunks = [f.Chunks[0]] } : f).ToList();
        Assert.Contains("not the stream chunks covering", Assert.Throws<InvalidInputException>(() => ManifestSerializer.Serialize(m with { Files = wrong })).Message);
        var skip = m.Files.Select(f => f.Path == "b" ? f with { StreamSkip = 0 } : f).ToList();
        Assert.Throws<InvalidInputException>(() => ManifestSerializer.Serialize(m with { Files = skip }));
        Assert.Contains("has a stream offset but the manifest has no stream",
            Assert.Throws<InvalidInputException>(() => ManifestSerializer.Serialize(m with { Stream = null })).Message);
        var own = m.Files.Where(f => !f.InStream).ToList();
        Assert.Contains("empty", Assert.Throws<InvalidInputException>(() =>
            ManifestSerializer.Serialize(m with { Files = own, InventoryDigest = InventoryDigest.Of(own), Stream = new SmallFileStream(0, []) })).Message);
        // "offset" where schema 1 expects "chunks".
        var schema1 = Text().Replace("{\"schema\":2,", "{\"schema\":1,", StringComparison.Ordinal);
        Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(schema1)));
    }
}
