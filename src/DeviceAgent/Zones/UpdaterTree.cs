using System.Security.Cryptography;
using System.Text;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>
/// What the updater is on disk: every regular file's relative path, SHA-256 and mode bits (permissions with setuid,
/// setgid and sticky). Modes are part of what is verified: an updater restored as 0644 cannot run, and a file made
/// setuid is as much damage as a changed byte.
/// </summary>
public static class UpdaterTree
{
    /// <summary>The mode bits that are recorded and verified (07777).</summary>
    public const UnixFileMode ModeMask = (UnixFileMode)0xFFF;

    /// <summary>One file of the updater as found on disk.</summary>
    /// <param name="Path">Relative path with '/'.</param>
    /// <param name="Sha256">Lower-case hex SHA-256 of the content.</param>
    /// <param name="Mode">Mode bits under <see cref="ModeMask"/>.</param>
    public sealed record FileState(string Path, string Sha256, UnixFileMode Mode);

    /// <summary>Hashes every regular file under <paramref name="folder"/> by streaming (bounded memory); empty when the folder is missing.</summary>
    /// <param name="folder">The updater folder.</param>
    /// <param name="index">When given, files it vouches for are not read (<see cref="StatIndex"/>).</param>
    public static IReadOnlyList<FileState> Scan(string folder, StatIndex? index = null)
    {
        var files = TreeInventory.Files(folder).ToList();
        var states = files.Select(f => new FileState(f.Relative, index?.Hash(f.Full) ?? TreeInventory.HashFile(f.Full), ModeOf(f.Full))).ToList();
        index?.Retain(folder, files.Select(f => f.Full).ToHashSet(StringComparer.Ordinal));
        return states;
    }

    /// <summary>The recorded mode bits of a file.</summary>
    public static UnixFileMode ModeOf(string path) => OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(path) & ModeMask;

    /// <summary>Sets the mode bits of a file (no-op on Windows).</summary>
    public static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode & ModeMask);
    }

    /// <summary>Digest of a tree: SHA-256 over a version line and, per file in ordinal path order, "path NUL sha256 NUL octal-mode LF".</summary>
    public static string Digest(IEnumerable<FileState> files)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData("orch-updater-tree/v2\n"u8);
        foreach (var f in files.OrderBy(f => f.Path, StringComparer.Ordinal))
            h.AppendData(Encoding.UTF8.GetBytes($"{f.Path}\0{f.Sha256}\0{Convert.ToString((int)(f.Mode & ModeMask), 8)}\n"));
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>Digest of the tree under <paramref name="folder"/>; null when the folder does not exist.</summary>
    public static string? DigestOf(string folder, StatIndex? index = null) => Directory.Exists(folder) ? Digest(Scan(folder, index)) : null;
}
