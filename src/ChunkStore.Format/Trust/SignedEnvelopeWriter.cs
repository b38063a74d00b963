using System.Buffers;
using System.Buffers.Text;
using System.Text.Json;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// Writes a one-signature <see cref="SignedEnvelope"/> as UTF-8 JSON straight from its bytes (payload, signature, batch
/// root and path), with no base64 or JSON strings in between: exactly the bytes <see cref="SignedEnvelope.ToBytes"/>
/// writes for the envelope holding the base64 of the same values (property order and names of <see cref="TrustJsonContext"/>,
/// the default encoder's escaping, <c>batch</c> only when there is one). A signer of many directives writes each
/// answer's envelope with it; readers keep parsing with <see cref="SignedEnvelope.Parse"/>.
/// </summary>
public static class SignedEnvelopeWriter
{
    /// <summary>
    /// Writes the envelope of <paramref name="payload"/> signed once by <paramref name="keyId"/> with
    /// <paramref name="signature"/>; for a batch-signed directive <paramref name="batchPath"/> is the leaf's inclusion
    /// path in a batch of <paramref name="batchSize"/> with root <paramref name="batchRoot"/> (null: no <c>batch</c>).
    /// </summary>
    public static void Write(Utf8JsonWriter writer, ReadOnlySpan<byte> payload, string keyId, ReadOnlySpan<byte> signature,
        IReadOnlyList<byte[]>? batchPath = null, int batchSize = 0, int batchIndex = 0, ReadOnlySpan<byte> batchRoot = default)
    {
        writer.WriteStartObject();
        WriteBase64(writer, "payload"u8, payload);
        writer.WriteStartArray("signatures"u8);
        writer.WriteStartObject();
        writer.WriteString("keyId"u8, keyId);
        WriteBase64(writer, "sig"u8, signature);
        writer.WriteEndObject();
        writer.WriteEndArray();
        if (batchPath is not null)
        {
            writer.WriteStartObject("batch"u8);
            writer.WriteNumber("size"u8, batchSize);
            writer.WriteNumber("index"u8, batchIndex);
            WriteBase64(writer, "root"u8, batchRoot);
            writer.WriteStartArray("path"u8);
            foreach (var hash in batchPath) WriteBase64(writer, default, hash);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
    }

    // Base64 as UTF-8, written as a string value escaped ('+' included) exactly as the writer escapes the same base64
    // held in a string, which WriteBase64String would not.
    private static void WriteBase64(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var length = Base64.GetMaxEncodedToUtf8Length(value.Length);
        byte[]? rented = null;
        var buffer = length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            Base64.EncodeToUtf8(value, buffer, out _, out var written);
            Orchestrator.Messages.Protocol.AsciiJsonString.Write(writer, name, buffer[..written]);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
