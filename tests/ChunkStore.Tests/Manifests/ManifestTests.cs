using System.Text;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Manifests;

public class ManifestTests
{
    private static readonly string ShaA = new('a', 64);
    private static readonly string ShaB = new('b', 64);
    private static readonly ChunkId C1 = ChunkId.Of([1]);
    private static readonly ChunkId C2 = ChunkId.Of([2]);
    private const string T1 = "0123456789abcdef0123456789abcdef";
    private const string T2 = "fedcba9876543210fedcba9876543210";

    internal static Manifest Sample(Func<Manifest, Manifest>? change = null)
    {
        var files = new List<ManifestFile>
        {
            new("bin/app", 493, 70000, ShaA, [new ChunkRef(C1, 65536, T1), new ChunkRef(C2, 4464, T2)]),
            new("lib/\"q\"é.so", 420, 0, ShaB, []),
        };
        var m = new Manifest("acme", "2.1.0", 7,
            new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero), new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            ChunkingOptions.Default, InventoryDigest.Of(files), files, [new ManifestSymlink("bin/latest", "app")]);
        return change is null ? m : change(m);
    }

    private static Manifest WithFiles(Manifest m, params ManifestFile[] files) =>
        m with { Files = files, InventoryDigest = InventoryDigest.Of(files) };

    [Fact]
    public void Canonical_bytes_are_stable_and_match_the_documented_shape()
    {
        var bytes = ManifestSerializer.Serialize(Sample());
        Assert.Equal(bytes, ManifestSerializer.Serialize(Sample()));
        var text = Encoding.UTF8.GetString(bytes);
        Assert.StartsWith("{\"schema\":1,\"product\":\"acme\",\"version\":\"2.1.0\",\"versionId\":7,\"createdUtc\":\"2025-01-02T03:04:05Z\",\"expiresUtc\":\"2026-01-02T03:04:05Z\",\"chunking\":{\"min\":16384,\"avg\":65536,\"max\":262144},\"inventoryDigest\":\"", text);
        Assert.Contains($"\"files\":[{{\"path\":\"bin/app\",\"mode\":493,\"size\":70000,\"sha256\":\"{ShaA}\",\"chunks\":[{{\"id\":\"{C1.Hex}\",\"length\":65536,\"tag\":\"{T1}\"}}", text);
        Assert.Contains("\"path\":\"lib/\\\"q\\\"é.so\"", text);
        Assert.EndsWith("\"symlinks\":[{\"path\":\"bin/latest\",\"target\":\"app\"}]}", text);
        Assert.DoesNotContain(" ", text);
    }

    [Fact]
    public void Parse_round_trips()
    {
        var bytes = ManifestSerializer.Serialize(Sample());
        var parsed = ManifestSerializer.Parse(bytes);
        Assert.Equal(bytes, ManifestSerializer.Serialize(parsed));
        Assert.Equal("lib/\"q\"é.so", parsed.Files[1].Path);
        Assert.Equal(C2, parsed.Files[0].Chunks[1].Id);
    }

    [Fact]
    public void Signature_verifies_and_any_tampered_byte_fails()
    {
        using var key = ReleaseSigningKey.Generate();
        var bytes = ManifestSerializer.Serialize(Sample());
        var sig = ManifestSigner.Sign(bytes, key);
        Assert.Equal(64, sig.Length);
        Assert.Equal(7, ManifestSigner.VerifyAndParse(bytes, sig, key.PublicKey).VersionId);
        for (var i = 0; i < bytes.Length; i += 13)
        {
            var tampered = bytes.ToArray();
            tampered[i] ^= 1;
            Assert.False(ManifestSigner.Verify(tampered, sig, key.PublicKey));
            Assert.Throws<IntegrityException>(() => ManifestSigner.VerifyAndParse(tampered, sig, key.PublicKey));
        }
        using var other = ReleaseSigningKey.Generate();
        Assert.False(ManifestSigner.Verify(bytes, sig, other.PublicKey));
        Assert.False(ManifestSigner.Verify(bytes, sig[..63], key.PublicKey));
    }

    [Fact]
    public void Keys_round_trip_through_raw_bytes()
    {
        using var key = ReleaseSigningKey.Generate();
        using var again = ReleaseSigningKey.FromBytes(key.ToBytes());
        Assert.Equal(key.PublicKey.ToBytes(), again.PublicKey.ToBytes());
        var sig = again.Sign("x"u8);
        Assert.True(ManifestSigner.Verify("x"u8, sig, ReleasePublicKey.FromBytes(key.PublicKey.ToBytes())));
        Assert.Throws<InvalidInputException>(() => ReleasePublicKey.FromBytes(new byte[31]));
        Assert.Throws<InvalidInputException>(() => ReleaseSigningKey.FromBytes(new byte[33]));
    }

    public static TheoryData<string, Func<Manifest, Manifest>> InvalidManifests() => new()
    {
        { "product", m => m with { Product = "Acme" } },
        { "version", m => m with { Version = "../x" } },
        { "version", m => m with { Version = "index" } },
        { "versionId", m => m with { VersionId = 0 } },
        { "expiresUtc", m => m with { ExpiresUtc = m.CreatedUtc } },
        { "whole seconds", m => m with { CreatedUtc = m.CreatedUtc.AddMilliseconds(5) } },
        { "chunking", m => m with { Chunking = new ChunkingOptions(100, 1000, 5000) } },
        { "absolute", m => WithFiles(m, new ManifestFile("/etc/passwd", 420, 0, ShaA, [])) },
        { "'..' segment", m => WithFiles(m, new ManifestFile("a/../../x", 420, 0, ShaA, [])) },
        { "'.' segment", m => WithFiles(m, new ManifestFile("./x", 420, 0, ShaA, [])) },
        { "empty segment", m => WithFiles(m, new ManifestFile("a//b", 420, 0, ShaA, [])) },
        { "'\\'", m => WithFiles(m, new ManifestFile("a\\..\\b", 420, 0, ShaA, [])) },
        { "control character", m => WithFiles(m, new ManifestFile("a\nb", 420, 0, ShaA, [])) },
        { "sorted", m => WithFiles(m, new ManifestFile("b", 420, 0, ShaA, []), new ManifestFile("a", 420, 0, ShaA, [])) },
        { "sorted", m => WithFiles(m, new ManifestFile("a", 420, 0, ShaA, []), new ManifestFile("a", 420, 0, ShaA, [])) },
        { "directory of", m => WithFiles(m, new ManifestFile("a", 420, 0, ShaA, []), new ManifestFile("a/b", 420, 0, ShaA, [])) },
        { "mode", m => WithFiles(m, new ManifestFile("a", 2541, 0, ShaA, [])) },
        { "sha256", m => WithFiles(m, new ManifestFile("a", 420, 0, "ABC", [])) },
        { "sum of its chunk", m => WithFiles(m, new ManifestFile("a", 420, 5, ShaA, [new ChunkRef(C1, 4, T1)])) },
        { "outside 1..", m => WithFiles(m, new ManifestFile("a", 420, 300000, ShaA, [new ChunkRef(C1, 300000, T1)])) },
        { "tag must be 32", m => WithFiles(m, new ManifestFile("a", 420, 4, ShaA, [new ChunkRef(C1, 4, T1.ToUpperInvariant())])) },
        { "tag must be 32", m => WithFiles(m, new ManifestFile("a", 420, 4, ShaA, [new ChunkRef(C1, 4, T1[..30])])) },
        { "inventoryDigest", m => m with { InventoryDigest = new string('0', 64) } },
        { "points outside", m => m with { Symlinks = [new ManifestSymlink("bin/x", "../../etc/passwd")] } },
        { "absolute", m => m with { Symlinks = [new ManifestSymlink("bin/x", "/etc/passwd")] } },
        { "appears more than once", m => m with { Symlinks = [new ManifestSymlink("bin/app", "x")] } },
        // Each target is inside the tree when read alone; resolved through the other links it is not.
        { "resolves outside the tree", m => m with { Symlinks = [new ManifestSymlink("a1/a2/s", "../../bin"), new ManifestSymlink("a1/a2/t", "s/../../../etc/passwd")] } },
        { "resolves outside the tree", m => m with { Symlinks = [new ManifestSymlink("d/up", ".."), new ManifestSymlink("d/x", "up/../etc")] } },
        { "more than 40 links", m => m with { Symlinks = [new ManifestSymlink("a/b/s", "../.."), new ManifestSymlink("a/b/t", "s/a/b/s/a/b/t")] } },
        { "more than 40 links", m => m with { Symlinks = [new ManifestSymlink("p", "q"), new ManifestSymlink("q", "p")] } },
    };

    [Fact]
    public void Links_into_the_tree_through_other_links_are_accepted()
    {
        var m = Sample(m => m with { Symlinks = [new ManifestSymlink("lib/current", "../bin"), new ManifestSymlink("z", "lib/current/app")] });
        Assert.Equal(2, ManifestSerializer.Parse(ManifestSerializer.Serialize(m)).Symlinks.Count);
    }

    [Theory]
    [MemberData(nameof(InvalidManifests))]
    public void Invalid_manifests_are_rejected_on_write(string expected, Func<Manifest, Manifest> change)
    {
        var ex = Assert.Throws<InvalidInputException>(() => ManifestSerializer.Serialize(Sample(change)));
        Assert.Contains(expected, ex.Message);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("{\"schema\":2}")]
    public void Garbage_is_rejected_on_parse(string text)
    {
        Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void Non_canonical_but_equivalent_json_is_rejected()
    {
        var text = Encoding.UTF8.GetString(ManifestSerializer.Serialize(Sample()));
        var variants = new[]
        {
            text.Replace("{\"schema\":1,", "{ \"schema\":1,"),                                  // whitespace
            text.Replace("\"schema\":1,\"product\":\"acme\",", "\"product\":\"acme\",\"schema\":1,"), // order
            text.Replace("\"schema\":1,", "\"schema\":1,\"schema\":1,"),                        // duplicate
            text.Replace("\"schema\":1,", "\"schema\":1,\"extra\":true,"),                      // extra property
            text.Replace("\"versionId\":7", "\"versionId\":7.0"),                                  // number form
            text.Replace("\"acme\"", "\"\\u0061cme\""),                                           // escaping
            text + "\n",                                                                          // trailing bytes
            text.Replace("\"size\":", "\"size\": "),                                             // whitespace deep inside
        };
        foreach (var variant in variants)
            Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(variant)));
    }

    [Fact]
    public void Tampered_but_well_formed_manifest_is_rejected_by_rules()
    {
        // Changing a file hash without fixing the inventory digest breaks the manifest's own consistency.
        var text = Encoding.UTF8.GetString(ManifestSerializer.Serialize(Sample())).Replace(ShaA, new string('c', 64));
        var ex = Assert.Throws<InvalidInputException>(() => ManifestSerializer.Parse(Encoding.UTF8.GetBytes(text)));
        Assert.Contains("inventoryDigest", ex.Message);
    }

    [Fact]
    public void Inventory_digest_matches_the_documented_definition()
    {
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            Encoding.UTF8.GetBytes($"a\n{ShaB}\nb/c\n{ShaA}\n")));
        Assert.Equal(expected, InventoryDigest.Compute([("b/c", ShaA), ("a", ShaB)]));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData([])), InventoryDigest.Compute([]));
        // Ordinal, not culture, order: 'B' (0x42) sorts before 'a' (0x61).
        Assert.Equal(
            InventoryDigest.Compute([("B", ShaA), ("a", ShaB)]),
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes($"B\n{ShaA}\na\n{ShaB}\n"))));
    }

    [Fact]
    public void Index_and_channel_round_trip_and_validate()
    {
        var index = new ReleaseIndex("acme", [
            new ReleaseIndexEntry("1.0", 1, "manifests/acme/1.0.json", new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            new ReleaseIndexEntry("1.1", 5, "manifests/acme/1.1.json", new DateTimeOffset(2025, 2, 1, 0, 0, 0, TimeSpan.Zero))]);
        var parsed = ReleaseIndex.Parse(index.ToBytes());
        Assert.Equal(index.ToBytes(), parsed.ToBytes());
        Assert.Equal("1.1", parsed.Latest!.Version);
        Assert.Equal("manifests/acme/1.0.json", parsed.FindById(1)!.ManifestPath);
        var unordered = index with { Versions = [index.Versions[1], index.Versions[0]] };
        Assert.Throws<InvalidInputException>(() => ReleaseIndex.Parse(unordered.ToBytes()));
        var channel = new ChannelPointer("acme", "stable", "1.1", 5, "manifests/acme/1.1.json");
        Assert.Equal(channel, ChannelPointer.Parse(channel.ToBytes()));
        Assert.Throws<InvalidInputException>(() => ChannelPointer.Parse((channel with { ManifestPath = "../x" }).ToBytes()));
    }
}
