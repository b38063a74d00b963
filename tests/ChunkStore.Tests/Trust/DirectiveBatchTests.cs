using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Tests.Trust;

/// <summary>
/// The Merkle tree of batch-signed directives (RFC 9162 shape) and its verification through the trust anchor: every
/// leaf of every size verifies, every tamper is refused with its own message.
/// </summary>
public sealed class DirectiveBatchTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "orch-batch-tests", Guid.NewGuid().ToString("N")[..12]);
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    public DirectiveBatchTests()
    {
        KeyFiles.Generate(_dir);
        TrustFiles.Init(_dir, Now);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private TrustAnchor Anchor => TrustAnchor.Load(File.ReadAllBytes(Path.Combine(_dir, TrustFiles.VersionFile(1))), "root 1");

    private ReleaseSigningKey Director => ReleaseSigningKey.FromBytes(File.ReadAllBytes(Path.Combine(_dir, TrustFiles.DirectorKeyFile)));

    private static byte[] Payload(string device, string nonce) =>
        new Directive(1, "directive", device, "acme", nonce, Now, Now.AddMinutes(5), UpdateAction.None, null, null, null, null, null, 3, null).ToPayload();

    // The tree as the node builds it, signed by `key`: one envelope per payload.
    private static SignedEnvelope[] SignBatch(IReadOnlyList<byte[]> payloads, ReleaseSigningKey key)
    {
        var (root, paths) = DirectiveBatch.Build(payloads.Select(p => DirectiveBatch.LeafHash(p)).ToList());
        var sig = new EnvelopeSignature(TrustKeyIds.Of(key.PublicKey), Convert.ToBase64String(key.Sign(DirectiveBatch.SignedMessage(root, payloads.Count))));
        return payloads.Select((p, i) => new SignedEnvelope(Convert.ToBase64String(p), [sig],
            new BatchInclusion(payloads.Count, i, Convert.ToBase64String(root), paths[i].Select(Convert.ToBase64String).ToList()))).ToArray();
    }

    // RFC 9162 §2.1.1 MTH, written directly from the definition (independent of the builder).
    private static byte[] Mth(IReadOnlyList<byte[]> leaves)
    {
        if (leaves.Count == 1) return DirectiveBatch.LeafHash(leaves[0]);
        var k = 1;
        while (k * 2 < leaves.Count) k *= 2;
        var left = Mth(leaves.Take(k).ToList());
        var right = Mth(leaves.Skip(k).ToList());
        return SHA256.HashData([0x01, .. left, .. right]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(300)]
    [InlineData(1023)]
    [InlineData(1024)]
    [InlineData(70_000)]
    public void A_leaf_hash_is_sha256_of_a_zero_byte_and_the_payload_whatever_its_length(int length)
    {
        var payload = new byte[length];
        new Random(length).NextBytes(payload);
        Assert.Equal(SHA256.HashData([0x00, .. payload]), DirectiveBatch.LeafHash(payload));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(64)]
    [InlineData(100)]
    public void Every_leaf_of_a_batch_of_any_size_leads_to_the_rfc_9162_root(int size)
    {
        var payloads = Enumerable.Range(0, size).Select(i => Encoding.UTF8.GetBytes($"leaf {i}")).ToList();
        var (root, paths) = DirectiveBatch.Build(payloads.Select(p => DirectiveBatch.LeafHash(p)).ToList());
        Assert.Equal(Mth(payloads), root);
        for (var i = 0; i < size; i++)
        {
            Assert.Equal(DirectiveBatch.PathLength(i, size), paths[i].Count);
            Assert.True(paths[i].Count <= DirectiveBatch.MaxPathLength);
            Assert.Equal(root, DirectiveBatch.RootFrom(DirectiveBatch.LeafHash(payloads[i]), i, size, paths[i]));
            // The same path under another index, or with another leaf, leads elsewhere.
            if (size > 1)
            {
                Assert.NotEqual(root, DirectiveBatch.RootFrom(DirectiveBatch.LeafHash(payloads[(i + 1) % size]), i, size, paths[i]));
                var other = DirectiveBatch.RootFrom(DirectiveBatch.LeafHash(payloads[i]), (i + 1) % size, size, paths[i]);
                Assert.True(other is null || !other.SequenceEqual(root));
            }
        }
    }

    [Fact]
    public void A_batch_of_one_has_an_empty_path_and_the_leaf_hash_as_root()
    {
        var payload = Payload("dev-1", "aa");
        var (root, paths) = DirectiveBatch.Build([DirectiveBatch.LeafHash(payload)]);
        Assert.Empty(paths[0]);
        Assert.Equal(SHA256.HashData([0x00, .. payload]), root);
        using var director = Director;
        var envelope = SignBatch([payload], director)[0];
        Assert.Equal(3, Directive.VerifyFor(envelope.ToJson(), Anchor, "dev-1", "acme", "aa", Now).FloorVersionId);
    }

    [Fact]
    public void The_largest_batch_has_paths_of_the_bound_and_one_more_leaf_is_refused()
    {
        var leaves = Enumerable.Range(0, DirectiveBatch.MaxSize).Select(i => SHA256.HashData(BitConverter.GetBytes(i))).ToList();
        var (root, paths) = DirectiveBatch.Build(leaves);
        Assert.All(new[] { 0, 1, 12345, DirectiveBatch.MaxSize - 1 }, i =>
        {
            Assert.Equal(DirectiveBatch.MaxPathLength, paths[i].Count);
            Assert.Equal(root, DirectiveBatch.RootFrom(leaves[i], i, DirectiveBatch.MaxSize, paths[i]));
        });
        Assert.Throws<ArgumentOutOfRangeException>(() => DirectiveBatch.Build([.. leaves, leaves[0]]));
    }

    [Fact]
    public void Every_leaf_of_a_signed_batch_verifies_for_its_own_device_and_nonce()
    {
        using var director = Director;
        var payloads = Enumerable.Range(0, 7).Select(i => Payload($"dev-{i}", $"n{i}")).ToList();
        var envelopes = SignBatch(payloads, director);
        for (var i = 0; i < envelopes.Length; i++)
            Assert.Equal($"dev-{i}", Directive.VerifyFor(envelopes[i].ToJson(), Anchor, $"dev-{i}", "acme", $"n{i}", Now).DeviceId);
    }

    [Fact]
    public void Each_tamper_of_a_batch_signed_directive_is_refused_with_its_own_message()
    {
        using var director = Director;
        var payloads = Enumerable.Range(0, 6).Select(i => Payload($"dev-{i}", $"n{i}")).ToList();
        var batch = SignBatch(payloads, director);
        var otherBatch = SignBatch(Enumerable.Range(0, 6).Select(i => Payload($"dev-{i}", $"m{i}")).ToList(), director);
        var e = batch[1];
        var b = e.Batch!;
        string Refusal(SignedEnvelope x) =>
            Assert.Throws<DirectiveRejectedException>(() => Directive.VerifyFor(x.ToJson(), Anchor, "dev-1", "acme", "n1", Now)).Message;

        // The honest envelope verifies (so each refusal below is the tamper's).
        Assert.Equal("dev-1", Directive.VerifyFor(e.ToJson(), Anchor, "dev-1", "acme", "n1", Now).DeviceId);

        // A path of another leaf (same length): leads to another root.
        Assert.Contains("do not lead to the signed batch root", Refusal(e with { Batch = b with { Path = batch[0].Batch!.Path } }));
        // Another device's payload under this proof (a swap between two answers).
        Assert.Contains("do not lead to the signed batch root", Refusal(batch[0] with { Batch = b }));
        // A payload altered.
        var altered = Encoding.UTF8.GetString(payloads[1]).Replace("\"floorVersionId\":3", "\"floorVersionId\":9");
        Assert.NotEqual(Encoding.UTF8.GetString(payloads[1]), altered);
        Assert.Contains("do not lead to the signed batch root", Refusal(e with { Payload = Convert.ToBase64String(Encoding.UTF8.GetBytes(altered)) }));
        // A wrong index: inside the batch it leads elsewhere; outside it is refused by name.
        Assert.Contains("do not lead to the signed batch root", Refusal(e with { Batch = b with { Index = 0 } }));
        Assert.Contains("leaf index 6 is outside a batch of 6 (wrong index)", Refusal(e with { Batch = b with { Index = 6 } }));
        Assert.Contains("leaf index -1 is outside", Refusal(e with { Batch = b with { Index = -1 } }));
        // A truncated and an extended path.
        Assert.Contains($"has {b.Path.Count - 1} hashes, leaf 1 of a batch of 6 needs {b.Path.Count} (truncated or extended path)",
            Refusal(e with { Batch = b with { Path = b.Path.Take(b.Path.Count - 1).ToList() } }));
        Assert.Contains($"has {b.Path.Count + 1} hashes, leaf 1 of a batch of 6 needs {b.Path.Count} (truncated or extended path)",
            Refusal(e with { Batch = b with { Path = [.. b.Path, b.Path[0]] } }));
        Assert.Contains("more than the 16 allowed", Refusal(e with { Batch = b with { Path = Enumerable.Repeat(b.Path[0], 17).ToList() } }));
        // A size that does not match the signed one, and sizes out of range.
        Assert.Contains("valid signature(s) of the 'director' role", Refusal(e with { Batch = b with { Size = 7 } }));
        Assert.Contains("batch size 0 is outside", Refusal(e with { Batch = b with { Size = 0 } }));
        Assert.Contains($"batch size {DirectiveBatch.MaxSize + 1} is outside", Refusal(e with { Batch = b with { Size = DirectiveBatch.MaxSize + 1 } }));
        // The root signature of another batch (with this batch's root), and another batch's root and signature.
        Assert.Contains("the batch root carries 0 valid signature(s) of the 'director' role of root version 1; 1 required",
            Refusal(e with { Signatures = otherBatch[1].Signatures }));
        Assert.Contains("do not lead to the signed batch root",
            Refusal(e with { Signatures = otherBatch[1].Signatures, Batch = b with { Root = otherBatch[1].Batch!.Root } }));
        // A hash that is not 32 bytes.
        Assert.Contains("the batch root is 31 bytes, not 32", Refusal(e with { Batch = b with { Root = Convert.ToBase64String(new byte[31]) } }));
        Assert.Contains("inclusion path hash 0 is not base64", Refusal(e with { Batch = b with { Path = ["%%", .. b.Path.Skip(1)] } }));
        // Signed by the release key instead of the director.
        using var release = KeyFiles.LoadSigningKey(_dir);
        Assert.Contains("valid signature(s) of the 'director' role", Refusal(SignBatch(payloads, release)[1]));
    }

    [Fact]
    public void A_batch_signature_is_never_a_single_signature_and_only_directives_carry_a_batch_proof()
    {
        using var director = Director;
        var payload = Payload("dev-1", "aa");
        var e = SignBatch([payload, Payload("dev-2", "bb")], director)[0];
        // The batch signature presented as a signature of the payload itself.
        Assert.Contains("carries 0 valid signature(s) of the 'director' role", Assert.Throws<DirectiveRejectedException>(
            () => Directive.VerifyFor((e with { Batch = null }).ToJson(), Anchor, "dev-1", "acme", "aa", Now)).Message);
        // A single signature presented as a batch root signature.
        var single = SignedEnvelope.Sign(payload, director, TrustKeyIds.Of(director.PublicKey));
        Assert.Contains("the batch root carries 0 valid signature(s)", Assert.Throws<DirectiveRejectedException>(
            () => Directive.VerifyFor((single with { Batch = e.Batch }).ToJson(), Anchor, "dev-1", "acme", "aa", Now)).Message);
        // The signed message starts with the context, never with a JSON document's '{'.
        Assert.StartsWith(DirectiveBatch.Context + "\0", Encoding.ASCII.GetString(DirectiveBatch.SignedMessage(new byte[32], 2)));
        // A product floor (release-signed document) with a batch proof is refused whatever it carries.
        using var release = KeyFiles.LoadSigningKey(_dir);
        var floor = ProductFloor.Create("acme", "2.0", 7, release, Now) with { Batch = e.Batch };
        Assert.Contains("only directives", Assert.Throws<IntegrityException>(() => ProductFloor.Verify(floor.ToBytes(), Anchor, "acme")).Message);
    }

    [Fact]
    public void Envelopes_without_a_batch_are_written_exactly_as_before()
    {
        using var director = Director;
        var single = SignedEnvelope.Sign(Payload("dev-1", "aa"), director, TrustKeyIds.Of(director.PublicKey));
        Assert.DoesNotContain("batch", single.ToJson());
        Assert.StartsWith("{\"payload\":", single.ToJson());
    }
}
