using System.Buffers;
using System.Text.Json;
using Orchestrator.ChunkStore.Trust;

namespace Orchestrator.Node.Trust;

/// <summary>
/// A directive the director signed, kept as its parts (the payload and either its own signature or its batch root's
/// signature with the payload's inclusion path) until an answer writes its envelope (<see cref="SignedEnvelopeWriter"/>):
/// an answer writes the envelope escaped into its <c>directive</c> string in one pass, so a signed answer holds no
/// envelope array of its own.
/// </summary>
/// <param name="payload">The directive's payload.</param>
/// <param name="keyId">The signing key's id.</param>
/// <param name="signature">The payload's own signature or, with <paramref name="batchPath"/>, that of the batch root.</param>
/// <param name="batchPath">The payload's inclusion path in a batch of <paramref name="batchSize"/> with root
/// <paramref name="batchRoot"/>, where it is leaf <paramref name="batchIndex"/>; null when signed on its own.</param>
/// <param name="batchSize">Directives under the root.</param>
/// <param name="batchIndex">This directive's leaf.</param>
/// <param name="batchRoot">The signed root.</param>
public sealed class SignedDirective(byte[] payload, string keyId, byte[] signature,
    IReadOnlyList<byte[]>? batchPath = null, int batchSize = 0, int batchIndex = 0, byte[]? batchRoot = null)
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>The envelope's UTF-8 JSON (the bytes <see cref="SignedEnvelope.ToBytes"/> writes for it).</summary>
    public byte[] ToBytes() => Envelope().ToArray();

    /// <summary>Writes the envelope as the string property <paramref name="name"/>, escaped as <see cref="Utf8JsonWriter"/> escapes a string.</summary>
    public void WriteAsString(Utf8JsonWriter writer, ReadOnlySpan<byte> name) =>
        SignedEnvelopeWriter.WriteAsString(writer, name, payload, keyId, signature, batchPath, batchSize, batchIndex, batchRoot);

    // Valid until the thread's next envelope.
    private ReadOnlySpan<byte> Envelope()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        SignedEnvelopeWriter.Write(writer, payload, keyId, signature, batchPath, batchSize, batchIndex, batchRoot);
        writer.Flush();
        return buffer.WrittenSpan;
    }
}
