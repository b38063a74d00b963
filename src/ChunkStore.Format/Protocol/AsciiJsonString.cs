using System.Buffers;
using System.Text.Json;

namespace Orchestrator.Messages.Protocol;

/// <summary>
/// Writes an ASCII UTF-8 value as a JSON string with exactly the bytes a <see cref="Utf8JsonWriter"/> with default
/// options writes for it, faster when the value holds many bytes to escape: base64 ('+') and JSON held in a string ('"'),
/// the directive's envelope and its payload. From the first byte it must escape on, the writer escapes byte by byte;
/// here the runs between such bytes are copied whole, each escape is the writer's own (taken from it once per ASCII
/// byte), and the string is written raw. A value with a byte beyond ASCII takes the writer's own path.
/// </summary>
public static class AsciiJsonString
{
    // Per ASCII byte, what a Utf8JsonWriter with default options writes inside a string for it; null: the byte itself.
    private static readonly byte[]?[] Escapes = BuildEscapes();
    private static readonly SearchValues<byte> Plain =
        SearchValues.Create(Enumerable.Range(0, 128).Where(b => Escapes[b] is null).Select(b => (byte)b).ToArray());

    /// <summary>
    /// Writes <paramref name="value"/> as the string property <paramref name="name"/> (empty: as a value, in an array),
    /// as <see cref="Utf8JsonWriter.WriteString(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> with default options would.
    /// </summary>
    public static void Write(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (!System.Text.Ascii.IsValid(value))
        {
            if (name.IsEmpty) writer.WriteStringValue(value);
            else writer.WriteString(name, value);
            return;
        }
        var length = 2 + 6 * value.Length;
        byte[]? rented = null;
        var escaped = length <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var at = 0;
            escaped[at++] = (byte)'"';
            var rest = value;
            while (rest.IndexOfAnyExcept(Plain) is var next and >= 0)
            {
                rest[..next].CopyTo(escaped[at..]);
                at += next;
                var escape = Escapes[rest[next]]!;
                escape.CopyTo(escaped[at..]);
                at += escape.Length;
                rest = rest[(next + 1)..];
            }
            rest.CopyTo(escaped[at..]);
            at += rest.Length;
            escaped[at++] = (byte)'"';
            if (!name.IsEmpty) writer.WritePropertyName(name);
            writer.WriteRawValue(escaped[..at], skipInputValidation: true);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static byte[]?[] BuildEscapes()
    {
        var escapes = new byte[]?[128];
        var buffer = new ArrayBufferWriter<byte>(16);
        for (var b = 0; b < 128; b++)
        {
            buffer.ResetWrittenCount();
            using (var w = new Utf8JsonWriter(buffer)) w.WriteStringValue([(byte)b]);
            var inner = buffer.WrittenSpan[1..^1];
            escapes[b] = inner.Length == 1 && inner[0] == b ? null : inner.ToArray();
        }
        return escapes;
    }
}
