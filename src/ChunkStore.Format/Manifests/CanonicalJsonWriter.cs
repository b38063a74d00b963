using System.Globalization;
using System.Text;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>
/// Writes the store's canonical JSON (docs/store-format.md): no whitespace, properties in the order written,
/// integers in plain decimal, minimal string escaping. Hand-written rather than Utf8JsonWriter because the
/// signed bytes must never change with a runtime's encoder defaults.
/// </summary>
internal sealed class CanonicalJsonWriter
{
    private readonly MemoryStream? _out;
    // Checking mode: the writer compares what it would write with these bytes instead of keeping a copy, so checking
    // that a large parsed document is canonical costs no second buffer of its size.
    private readonly ReadOnlyMemory<byte> _expected;
    private int _position;
    private bool _differs;

    /// <summary>A writer that collects its output (<see cref="ToArray"/>).</summary>
    public CanonicalJsonWriter() => _out = new MemoryStream();

    private CanonicalJsonWriter(ReadOnlyMemory<byte> expected) => _expected = expected;

    /// <summary>A writer that keeps nothing and only checks that it writes exactly <paramref name="expected"/> (<see cref="WroteExactly"/>).</summary>
    public static CanonicalJsonWriter Checking(ReadOnlyMemory<byte> expected) => new(expected);

    /// <summary>In checking mode: true when everything written so far equals the expected bytes and covers all of them.</summary>
    public bool WroteExactly => !_differs && _position == _expected.Length;
    private readonly Stack<bool> _first = new();
    private bool _afterName;

    public CanonicalJsonWriter StartObject() { Separator(); Raw('{'); _first.Push(true); return this; }
    public CanonicalJsonWriter EndObject() { _first.Pop(); Raw('}'); return this; }
    public CanonicalJsonWriter StartArray() { Separator(); Raw('['); _first.Push(true); return this; }
    public CanonicalJsonWriter EndArray() { _first.Pop(); Raw(']'); return this; }

    public CanonicalJsonWriter Name(string name)
    {
        Separator();
        WriteString(name);
        Raw(':');
        _afterName = true;
        return this;
    }

    public CanonicalJsonWriter String(string value) { Separator(); WriteString(value); return this; }

    public CanonicalJsonWriter Number(long value)
    {
        Separator();
        Span<byte> digits = stackalloc byte[20];
        value.TryFormat(digits, out var n, default, CultureInfo.InvariantCulture);
        Emit(digits[..n]);
        return this;
    }

    public CanonicalJsonWriter Property(string name, string value) => Name(name).String(value);
    public CanonicalJsonWriter Property(string name, long value) => Name(name).Number(value);

    public byte[] ToArray() => _out?.ToArray() ?? throw new InvalidOperationException("a checking writer keeps no output");

    private void Emit(ReadOnlySpan<byte> bytes)
    {
        if (_out is not null)
        {
            _out.Write(bytes);
            return;
        }
        if (_differs) return;
        if (_position + bytes.Length > _expected.Length || !_expected.Span.Slice(_position, bytes.Length).SequenceEqual(bytes)) _differs = true;
        _position += bytes.Length;
    }

    private void Separator()
    {
        if (_afterName) { _afterName = false; return; }
        if (_first.Count == 0) return;
        if (_first.Peek()) { _first.Pop(); _first.Push(false); }
        else Raw(',');
    }

    private void Raw(char c) => Emit([(byte)c]);

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private void WriteString(string value)
    {
        Raw('"');
        var start = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c is not ('"' or '\\' or < ' ')) continue;
            EmitUtf8(value.AsSpan(start, i - start));
            switch (c)
            {
                case '"': Emit("\\\""u8); break;
                case '\\': Emit("\\\\"u8); break;
                default: EmitControl(c); break;
            }
            start = i + 1;
        }
        EmitUtf8(value.AsSpan(start));
        Raw('"');
    }

    private void EmitControl(char c)
    {
        Emit("\\u00"u8);
        Span<byte> hex = stackalloc byte[2];
        ((int)c).TryFormat(hex, out _, "x2", CultureInfo.InvariantCulture);
        Emit(hex);
    }

    // Encodes without an intermediate string or array for the short names, ids and tags that make up most of a manifest.
    private void EmitUtf8(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return;
        var max = StrictUtf8.GetMaxByteCount(text.Length);
        if (max <= 512)
        {
            Span<byte> buffer = stackalloc byte[512];
            Emit(buffer[..StrictUtf8.GetBytes(text, buffer)]);
        }
        else
        {
            Emit(StrictUtf8.GetBytes(text.ToArray()));
        }
    }
}
