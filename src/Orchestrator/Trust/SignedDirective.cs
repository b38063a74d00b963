using System.Buffers;
using System.Text.Json;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Trust;

/// <summary>
/// A directive the director signed, kept as its parts (the payload and either its own signature or its batch root's
/// signature with the payload's inclusion path) until an answer writes its envelope (<see cref="SignedEnvelopeWriter"/>):
/// an answer escapes the envelope into its <c>directive</c> string from one buffer of the thread, so a signed answer
/// holds no envelope array of its own.
/// </summary>
public sealed class SignedDirective
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    private readonly byte[] _payload;
    private readonly string _keyId;
    private readonly byte[] _signature;
    private readonly IReadOnlyList<byte[]>? _batchPath;
    private readonly int _batchSize;
    private readonly int _batchIndex;
    private readonly byte[]? _batchRoot;

    /// <summary>
    /// <paramref name="payload"/> signed by <paramref name="keyId"/> with <paramref name="signature"/>: its own signature,
    /// or, with <paramref name="batchPath"/>, the signature of the root <paramref name="batchRoot"/> of a batch of
    /// <paramref name="batchSize"/> in which it is leaf <paramref name="batchIndex"/>.
    /// </summary>
    public SignedDirective(byte[] payload, string keyId, byte[] signature,
        IReadOnlyList<byte[]>? batchPath = null, int batchSize = 0, int batchIndex = 0, byte[]? batchRoot = null)
    {
        _payload = payload;
        _keyId = keyId;
        _signature = signature;
        _batchPath = batchPath;
        _batchSize = batchSize;
        _batchIndex = batchIndex;
        _batchRoot = batchRoot;
    }

    /// <summary>The envelope's UTF-8 JSON (the bytes <see cref="SignedEnvelope.ToBytes"/> writes for it).</summary>
    public byte[] ToBytes() => Envelope().ToArray();

    /// <summary>Writes the envelope as the string property <paramref name="name"/>, escaped as <see cref="Utf8JsonWriter"/> escapes a string.</summary>
    public void WriteAsString(Utf8JsonWriter writer, ReadOnlySpan<byte> name) => AsciiJsonString.Write(writer, name, Envelope());

    // Valid until the thread's next envelope.
    private ReadOnlySpan<byte> Envelope()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        SignedEnvelopeWriter.Write(writer, _payload, _keyId, _signature, _batchPath, _batchSize, _batchIndex, _batchRoot);
        writer.Flush();
        return buffer.WrittenSpan;
    }
}
