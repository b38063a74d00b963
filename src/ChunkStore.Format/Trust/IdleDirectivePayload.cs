using System.Buffers;
using System.Text.Json;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// The signed payload of a "nothing to do" directive written straight as UTF-8: the bytes <see cref="Directive.ToPayload"/>
/// writes for <c>new Directive(1, "directive", deviceId, product, nonce, issued, expires, UpdateAction.None, null, null,
/// null, null, null, floorVersionId, null, null)</c> (same names, order, escaping, dates and explicit nulls), without the
/// record and the generated serializer. The idle check-in's answer is the node's most frequent signature; the record
/// form stays the definition, and Trust tests pin the two to equal bytes for every kind of value.
/// </summary>
public static class IdleDirectivePayload
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>The payload bytes of the idle directive (an array of their exact length).</summary>
    public static byte[] Write(string deviceId, string product, string nonce, DateTimeOffset issuedUtc, DateTimeOffset expiresUtc, long floorVersionId)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(512);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        writer.WriteStartObject();
        writer.WriteNumber("schema"u8, 1);
        writer.WriteString("type"u8, "directive"u8);
        writer.WriteString("deviceId"u8, deviceId);
        writer.WriteString("product"u8, product);
        writer.WriteString("nonce"u8, nonce);
        writer.WriteString("issuedUtc"u8, issuedUtc);
        writer.WriteString("expiresUtc"u8, expiresUtc);
        writer.WriteString("action"u8, "None"u8);
        writer.WriteNull("targetVersion"u8);
        writer.WriteNull("targetVersionId"u8);
        writer.WriteNull("manifestPath"u8);
        writer.WriteNull("manifestSha256"u8);
        writer.WriteNull("repairFiles"u8);
        writer.WriteNumber("floorVersionId"u8, floorVersionId);
        writer.WriteNull("downgrade"u8);
        writer.WriteNull("manifestBytes"u8);
        writer.WriteEndObject();
        writer.Flush();
        var payload = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity > 64 * 1024) t_buffer = null; // a huge id or nonce is not kept per thread
        return payload;
    }
}
