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

    // The envelope as the string property "directive" of an answer: first written, then escaped whole (the reference),
    // and in one pass.
    private static (string Reference, string OnePass) AsString(byte[] payload, string keyId, byte[] sig, IReadOnlyList<byte[]>? path = null,
        int size = 0, int index = 0, byte[]? root = null)
    {
        var envelope = Written(payload, keyId, sig, path, size, index, root);
        string Answer(Action<Utf8JsonWriter> write)
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteNumber("n"u8, 1);
                write(writer);
                writer.WriteEndObject();
            }
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }
        return (Answer(w => w.WriteString("directive"u8, envelope)),
            Answer(w => SignedEnvelopeWriter.WriteAsString(w, "directive"u8, payload, keyId, sig, path, size, index, root)));
    }

    [Theory]
    [InlineData(1, "k1")]
    [InlineData(190, "0123abcd")]
    [InlineData(2000, "k\"+<>&'\\\u0001/=")] // every escape of the default encoder, twice
    [InlineData(450, "clé")] // beyond ASCII: the writer escapes the envelope written whole
    public void An_envelope_written_into_an_answers_string_in_one_pass_is_the_writers_escaping_of_the_envelope(int payloadLength, string keyId)
    {
        for (var round = 0; round < 20; round++)
        {
            var payload = new byte[payloadLength];
            Random.Shared.NextBytes(payload);
            var sig = new byte[64];
            Random.Shared.NextBytes(sig);
            var (reference, onePass) = AsString(payload, keyId, sig);
            Assert.Equal(reference, onePass);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(11)]
    [InlineData(64)]
    public void A_batch_signed_envelope_written_into_an_answers_string_in_one_pass_is_the_writers_escaping_and_reads_back(int size)
    {
        using var key = ReleaseSigningKey.Generate();
        var keyId = TrustKeyIds.Of(key.PublicKey);
        // Payloads of '+'-heavy base64 (0xfb 0xef 0xbe encodes as "++++") beside random ones.
        var payloads = Enumerable.Range(0, size).Select(i => i % 2 == 0
            ? Enumerable.Repeat(new byte[] { 0xfb, 0xef, 0xbe }, 50 + i).SelectMany(b => b).ToArray()
            : Encoding.UTF8.GetBytes($"{{\"device\":\"d{i}\",\"x\":\"{new string('+', i)}\"}}")).ToList();
        var (root, paths) = DirectiveBatch.Build(payloads.Select(p => DirectiveBatch.LeafHash(p)).ToList());
        var sig = key.Sign(DirectiveBatch.SignedMessage(root, size));
        for (var i = 0; i < size; i++)
        {
            var (reference, onePass) = AsString(payloads[i], keyId, sig, paths[i], size, i, root);
            Assert.Equal(reference, onePass);
            var directive = JsonDocument.Parse(onePass).RootElement.GetProperty("directive").GetString()!;
            var parsed = SignedEnvelope.Parse(Encoding.UTF8.GetBytes(directive), 1 << 20, "answer's directive");
            Assert.Equal(payloads[i], parsed.PayloadBytes("answer's directive"));
            Assert.Equal((size, i), (parsed.Batch!.Size, parsed.Batch.Index));
        }
    }
}
