using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>
/// The sealed updater record (<c>updater.digest.sealed</c>): what the free-zone updater and the hidden backup must be.
/// <list type="bullet">
/// <item><see cref="TreeDigest"/>: <see cref="UpdaterTree.Digest"/> of the updater (paths, SHA-256 and mode bits of every
/// file), so content and modes are checked by streaming the free copy, without the backup.</item>
/// <item><see cref="Generation"/>: every seal writes the next generation and the version record remembers it, so a pair
/// copied back from an older sealed copy is older than the record and is refused, never restored.</item>
/// <item><see cref="BackupSha256"/>: SHA-256 of the sealed backup file's bytes, so the backup is checked by streaming it;
/// it is decrypted only when a repair needs it.</item>
/// <item><see cref="Version"/>: the updater release this is (<c>image</c> for the copy of the virtual zone).</item>
/// <item><see cref="ImageDigest"/>: tree digest of the virtual zone's plain copy when it was last sealed from, so a
/// damaged image is not copied over the free zone as if it were the device image (<c>-</c>: not known).</item>
/// </list>
/// Text: <c>v2 &lt;treeDigest&gt; &lt;generation&gt; &lt;backupSha256&gt; &lt;version&gt; &lt;imageDigest&gt;</c>. Records from before modes were verified
/// (<c>&lt;digest&gt; [&lt;generation&gt;]</c>) parse as <see cref="Legacy"/>: they cannot vouch for modes, so the launcher
/// reseals from the virtual zone.
/// </summary>
public sealed record UpdaterSeal(string TreeDigest, long Generation, string BackupSha256, string Version, string? ImageDigest, bool Legacy = false)
{
    /// <summary>Version recorded for an updater sealed from the device image (provision, recovery, repair from the virtual zone).</summary>
    public const string ImageVersion = "image";

    /// <summary>The text sealed in the hidden zone.</summary>
    public byte[] Format() => Encoding.ASCII.GetBytes(
        $"v2 {TreeDigest} {Generation.ToString(CultureInfo.InvariantCulture)} {BackupSha256} {Version} {ImageDigest ?? "-"}");

    /// <summary>Parses a sealed record; null when it is not one.</summary>
    public static UpdaterSeal? Parse(byte[] bytes)
    {
        var parts = Encoding.ASCII.GetString(bytes).Split(' ');
        if (parts is ["v2", var digest, var gen, var backup, var version, var image] && IsHex(digest) && IsHex(backup) && IsValidVersion(version) &&
            (image == "-" || IsHex(image)) && long.TryParse(gen, NumberStyles.None, CultureInfo.InvariantCulture, out var g))
            return new UpdaterSeal(digest, g, backup, version, image == "-" ? null : image);
        if (parts is [var legacyDigest] && IsHex(legacyDigest)) return new UpdaterSeal(legacyDigest, 0, "", ImageVersion, null, Legacy: true);
        if (parts is [var d, var lg] && IsHex(d) && long.TryParse(lg, NumberStyles.None, CultureInfo.InvariantCulture, out var legacyGen))
            return new UpdaterSeal(d, legacyGen, "", ImageVersion, null, Legacy: true);
        return null;
    }

    /// <summary>The sealed record; null when it is missing, damaged or not a record.</summary>
    public static UpdaterSeal? Read(HiddenZone hidden)
    {
        var (state, bytes) = hidden.Read(HiddenItem.UpdaterDigest);
        return state == HiddenItemState.Ok ? Parse(bytes!) : null;
    }

    /// <summary>Checks a version string for the record (no spaces, printable ASCII, at most 64 characters).</summary>
    public static bool IsValidVersion(string version) =>
        version.Length is > 0 and <= 64 && version.All(c => c is > ' ' and < (char)127);

    /// <summary>SHA-256 of a file, streamed (the sealed backup is never read whole to be checked).</summary>
    public static string HashFile(string path) => Storage.TreeInventory.HashFile(path);

    private static bool IsHex(string s) => s.Length == 64 && s.All(char.IsAsciiHexDigitLower);
}

/// <summary>The generation sealed with the updater backup (<see cref="UpdaterSeal.Generation"/>).</summary>
public static class UpdaterGeneration
{
    /// <summary>Digest and generation of the sealed record; (null, 0) when it is missing or damaged.</summary>
    public static (string? Digest, long Generation) Read(HiddenZone hidden) =>
        UpdaterSeal.Read(hidden) is { } s ? (s.TreeDigest, s.Generation) : (null, 0);
}
