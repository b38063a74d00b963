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
        var length = 2 + MaxEscapedLength(value.Length);
        byte[]? rented = null;
        var escaped = length <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            escaped[0] = (byte)'"';
            var at = 1 + Escape(value, escaped[1..]);
            escaped[at++] = (byte)'"';
            if (!name.IsEmpty) writer.WritePropertyName(name);
            writer.WriteRawValue(escaped[..at], skipInputValidation: true);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Most bytes <see cref="Escape"/> writes for an ASCII value of <paramref name="length"/> bytes.</summary>
    public static int MaxEscapedLength(int length) => 6 * length;

    /// <summary>
    /// Writes into <paramref name="destination"/> what a <see cref="Utf8JsonWriter"/> with default options writes between
    /// the quotes of a string holding <paramref name="ascii"/> (which must be ASCII), and returns the bytes written; at
    /// most <see cref="MaxEscapedLength"/>.
    /// </summary>
    public static int Escape(ReadOnlySpan<byte> ascii, Span<byte> destination)
    {
        var at = 0;
        var rest = ascii;
        while (rest.IndexOfAnyExcept(Plain) is var next and >= 0)
        {
            rest[..next].CopyTo(destination[at..]);
            at += next;
            var b = rest[next];
            var escape = (b < Escapes.Length ? Escapes[b] : null) ?? throw new ArgumentException($"Byte 0x{b:x2} is not ASCII: escape only ASCII values here.", nameof(ascii));
            escape.CopyTo(destination[at..]);
            at += escape.Length;
            rest = rest[(next + 1)..];
        }
        rest.CopyTo(destination[at..]);
        return at + rest.Length;
    }

    /// <summary><see cref="Escape"/> of <paramref name="ascii"/> as a new array.</summary>
    public static byte[] Escaped(ReadOnlySpan<byte> ascii)
    {
        var buffer = new byte[MaxEscapedLength(ascii.Length)];
        return buffer.AsSpan(0, Escape(ascii, buffer)).ToArray();
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
