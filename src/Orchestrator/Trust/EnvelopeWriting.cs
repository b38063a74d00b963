using System.Buffers;
using System.Text.Json;
using Orchestrator.ChunkStore.Trust;

namespace Orchestrator.Node.Trust;

/// <summary>
/// A directive's envelope as its UTF-8 JSON bytes (<see cref="SignedEnvelopeWriter"/>), written through one reusable
/// buffer and writer per thread, so a signed answer costs one array of its exact length.
/// </summary>
internal static class EnvelopeWriting
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>The envelope of <paramref name="payload"/> (see <see cref="SignedEnvelopeWriter.Write"/>).</summary>
    public static byte[] Write(byte[] payload, string keyId, byte[] signature,
        IReadOnlyList<byte[]>? batchPath = null, int batchSize = 0, int batchIndex = 0, byte[]? batchRoot = null)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        SignedEnvelopeWriter.Write(writer, payload, keyId, signature, batchPath, batchSize, batchIndex, batchRoot);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
