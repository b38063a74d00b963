using System.Buffers;
using System.Text;
using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;

namespace Orchestrator.ChunkStore.Tests.Trust;

/// <summary>
/// The envelope written straight from its bytes is the envelope <see cref="SignedEnvelope.ToBytes"/> writes for the
/// same values as base64 strings, byte for byte (escaping of '+' included), single-signed and batch-signed, and it
/// parses and verifies as one.
/// </summary>
public sealed class SignedEnvelopeWriterTests
{
    private static byte[] Written(byte[] payload, string keyId, byte[] sig, IReadOnlyList<byte[]>? path = null, int size = 0, int index = 0, byte[]? root = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
            SignedEnvelopeWriter.Write(writer, payload, keyId, sig, path, size, index, root);
        return buffer.WrittenSpan.ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(190)] // base64 longer than the writer's stack buffer
    [InlineData(2000)]
    public void A_single_signed_envelope_is_the_serializers_bytes(int payloadLength)
    {
        using var key = ReleaseSigningKey.Generate();
        var keyId = TrustKeyIds.Of(key.PublicKey);
        for (var round = 0; round < 20; round++)
        {
            var payload = new byte[payloadLength];
            Random.Shared.NextBytes(payload);
            var expected = SignedEnvelope.Sign(payload, key, keyId).ToBytes();
            var written = Written(payload, keyId, key.Sign(payload));
            Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(written));
        }
    }

    [Fact]
    public void Base64_plus_signs_are_escaped_as_the_serializer_escapes_them()
    {
        var payload = new byte[] { 0xfb, 0xef, 0xbe, 0xfb }; // "++++" in base64
        var sig = new byte[64];
        Array.Fill(sig, (byte)0xfb);
        var written = Encoding.UTF8.GetString(Written(payload, "k", sig));
        Assert.Contains("\"payload\":\"\\u002B\\u002B\\u002B\\u002B", written);
        Assert.Equal(Encoding.UTF8.GetString(new SignedEnvelope(Convert.ToBase64String(payload), [new EnvelopeSignature("k", Convert.ToBase64String(sig))]).ToBytes()), written);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(11)]
    [InlineData(64)]
    public void A_batch_signed_envelope_is_the_serializers_bytes_and_parses_back(int size)
    {
        using var key = ReleaseSigningKey.Generate();
        var keyId = TrustKeyIds.Of(key.PublicKey);
        var payloads = Enumerable.Range(0, size).Select(i => Encoding.UTF8.GetBytes($"{{\"device\":\"d{i}\",\"x\":\"{new string('+', i)}\"}}")).ToList();
        var (root, paths) = DirectiveBatch.Build(payloads.Select(p => DirectiveBatch.LeafHash(p)).ToList());
        var sig = key.Sign(DirectiveBatch.SignedMessage(root, size));
        for (var i = 0; i < size; i++)
        {
            var expected = new SignedEnvelope(Convert.ToBase64String(payloads[i]), [new EnvelopeSignature(keyId, Convert.ToBase64String(sig))],
                new BatchInclusion(size, i, Convert.ToBase64String(root), paths[i].Select(Convert.ToBase64String).ToList())).ToBytes();
            var written = Written(payloads[i], keyId, sig, paths[i], size, i, root);
            Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(written));
            var parsed = SignedEnvelope.Parse(written, 1 << 20, "written envelope");
            Assert.Equal(payloads[i], parsed.PayloadBytes("written envelope"));
            Assert.Equal(i, parsed.Batch!.Index);
        }
    }
}
