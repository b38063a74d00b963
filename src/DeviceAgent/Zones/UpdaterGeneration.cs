using System.Globalization;
using System.Text;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>
/// The generation sealed with the updater backup: the digest item holds <c>"&lt;digest&gt; &lt;generation&gt;"</c> (a bare
/// digest, from before generations, is generation 0), the backup must match that digest, and the version record keeps
/// the generation last written. Every provision or recovery writes the next generation, so a pair copied back from an
/// older sealed copy is older than the record and is refused, never restored.
/// </summary>
public static class UpdaterGeneration
{
    /// <summary>The sealed digest item for <paramref name="digest"/> at <paramref name="generation"/>.</summary>
    public static byte[] Format(string digest, long generation) =>
        Encoding.ASCII.GetBytes($"{digest} {generation.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>Digest and generation of the sealed digest item; (null, 0) when it is missing or damaged.</summary>
    public static (string? Digest, long Generation) Read(HiddenZone hidden)
    {
        var (state, bytes) = hidden.Read(HiddenItem.UpdaterDigest);
        return state == HiddenItemState.Ok ? Parse(bytes!) : (null, 0);
    }

    /// <summary>Parses a digest item.</summary>
    public static (string? Digest, long Generation) Parse(byte[] bytes)
    {
        var text = Encoding.ASCII.GetString(bytes);
        var space = text.IndexOf(' ');
        if (space < 0) return (text, 0);
        return long.TryParse(text.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? (text[..space], g) : (null, 0);
    }
}
