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
    private readonly MemoryStream _out = new();
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
        var text = value.ToString(CultureInfo.InvariantCulture);
        _out.Write(Encoding.ASCII.GetBytes(text));
        return this;
    }

    public CanonicalJsonWriter Property(string name, string value) => Name(name).String(value);
    public CanonicalJsonWriter Property(string name, long value) => Name(name).Number(value);

    public byte[] ToArray() => _out.ToArray();

    private void Separator()
    {
        if (_afterName) { _afterName = false; return; }
        if (_first.Count == 0) return;
        if (_first.Peek()) { _first.Pop(); _first.Push(false); }
        else Raw(',');
    }

    private void Raw(char c) => _out.WriteByte((byte)c);

    private void WriteString(string value)
    {
        Raw('"');
        var sb = new StringBuilder(value.Length + 2);
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case < ' ': sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }
        _out.Write(new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(sb.ToString()));
        Raw('"');
    }
}
