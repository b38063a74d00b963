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

    /// <summary>
    /// Writes the envelope <see cref="Write"/> writes as the string property <paramref name="name"/> of
    /// <paramref name="writer"/>: the bytes <see cref="Orchestrator.Messages.Protocol.AsciiJsonString.Write"/> writes
    /// for the envelope's bytes, produced in one pass (each structural byte escaped once, each string's content twice)
    /// instead of writing the envelope and then escaping all of it.
    /// </summary>
    public static void WriteAsString(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> payload, string keyId,
        ReadOnlySpan<byte> signature, IReadOnlyList<byte[]>? batchPath = null, int batchSize = 0, int batchIndex = 0, ReadOnlySpan<byte> batchRoot = default)
    {
        if (!System.Text.Ascii.IsValid(keyId))
        {
            var envelope = new ArrayBufferWriter<byte>(1024);
            using (var inner = new Utf8JsonWriter(envelope))
                Write(inner, payload, keyId, signature, batchPath, batchSize, batchIndex, batchRoot);
            Orchestrator.Messages.Protocol.AsciiJsonString.Write(writer, name, envelope.WrittenSpan);
            return;
        }
        var content = Base64.GetMaxEncodedToUtf8Length(payload.Length) + Base64.GetMaxEncodedToUtf8Length(signature.Length)
            + Base64.GetMaxEncodedToUtf8Length(batchRoot.Length) + keyId.Length;
        var pathCount = 0;
        if (batchPath is not null)
            foreach (var hash in batchPath) (content, pathCount) = (content + Base64.GetMaxEncodedToUtf8Length(hash.Length), pathCount + 1);
        // A content byte escaped twice is at most 7 bytes (a 6-byte escape whose backslash is escaped again); the
        // structure, escaped once, and the two numbers fit in 512, each path entry's quotes and comma in 16.
        var length = 2 + 7 * content + 512 + 16 * pathCount;
        byte[]? rented = null;
        var buffer = length <= 1024 ? stackalloc byte[1024] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var at = 0;
            buffer[at++] = (byte)'"';
            Append(buffer, ref at, PayloadOpen);
            AppendBase64(buffer, ref at, payload);
            Append(buffer, ref at, KeyIdOpen);
            foreach (var c in keyId) Append(buffer, ref at, Twice[c]);
            Append(buffer, ref at, SigOpen);
            AppendBase64(buffer, ref at, signature);
            Append(buffer, ref at, SignaturesClose);
            if (batchPath is not null)
            {
                Append(buffer, ref at, BatchSizeOpen);
                batchSize.TryFormat(buffer[at..], out var n, default, System.Globalization.CultureInfo.InvariantCulture);
                at += n;
                Append(buffer, ref at, BatchIndexOpen);
                batchIndex.TryFormat(buffer[at..], out n, default, System.Globalization.CultureInfo.InvariantCulture);
                at += n;
                Append(buffer, ref at, BatchRootOpen);
                AppendBase64(buffer, ref at, batchRoot);
                Append(buffer, ref at, BatchPathOpen);
                for (var i = 0; i < batchPath.Count; i++)
                {
                    Append(buffer, ref at, i == 0 ? Quote : CommaQuote);
                    AppendBase64(buffer, ref at, batchPath[i]);
                    Append(buffer, ref at, Quote);
                }
                Append(buffer, ref at, BatchClose);
            }
            Append(buffer, ref at, EnvelopeClose);
            buffer[at++] = (byte)'"';
            if (!name.IsEmpty) writer.WritePropertyName(name);
            writer.WriteRawValue(buffer[..at], skipInputValidation: true);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    // The envelope's structure as it stands inside the answer's string (escaped once), and per ASCII byte what a byte
    // of the envelope's string contents becomes there (escaped by the envelope's writer, then by the answer's).
    private static byte[] Once(ReadOnlySpan<byte> structure) => Orchestrator.Messages.Protocol.AsciiJsonString.Escaped(structure);
    private static readonly byte[][] Twice = Enumerable.Range(0, 128)
        .Select(b => Once(Orchestrator.Messages.Protocol.AsciiJsonString.Escaped([(byte)b]))).ToArray();
    private static readonly SearchValues<byte> TwicePlain =
        SearchValues.Create(Enumerable.Range(0, 128).Where(b => Twice[b] is [var only] && only == b).Select(b => (byte)b).ToArray());
    private static readonly byte[] PayloadOpen = Once("{\"payload\":\""u8);
    private static readonly byte[] KeyIdOpen = Once("\",\"signatures\":[{\"keyId\":\""u8);
    private static readonly byte[] SigOpen = Once("\",\"sig\":\""u8);
    private static readonly byte[] SignaturesClose = Once("\"}]"u8);
    private static readonly byte[] BatchSizeOpen = Once(",\"batch\":{\"size\":"u8);
    private static readonly byte[] BatchIndexOpen = Once(",\"index\":"u8);
    private static readonly byte[] BatchRootOpen = Once(",\"root\":\""u8);
    private static readonly byte[] BatchPathOpen = Once("\",\"path\":["u8);
    private static readonly byte[] Quote = Once("\""u8);
    private static readonly byte[] CommaQuote = Once(",\""u8);
    private static readonly byte[] BatchClose = Once("]}"u8);
    private static readonly byte[] EnvelopeClose = Once("}"u8);

    private static void Append(Span<byte> buffer, ref int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(buffer[at..]);
        at += bytes.Length;
    }

    // Base64 of value as string content of the envelope, inside the answer's string: runs of bytes that stay as they are
    // copied whole, each other byte ('+') replaced by its double escape.
    private static void AppendBase64(Span<byte> buffer, ref int at, ReadOnlySpan<byte> value)
    {
        var length = Base64.GetMaxEncodedToUtf8Length(value.Length);
        byte[]? rented = null;
        var encoded = length <= 1024 ? stackalloc byte[1024] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            Base64.EncodeToUtf8(value, encoded, out _, out var written);
            var rest = (ReadOnlySpan<byte>)encoded[..written];
            while (rest.IndexOfAnyExcept(TwicePlain) is var next and >= 0)
            {
                Append(buffer, ref at, rest[..next]);
                Append(buffer, ref at, Twice[rest[next]]);
                rest = rest[(next + 1)..];
            }
            Append(buffer, ref at, rest);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
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
