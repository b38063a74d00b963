using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>
/// The digest of a tree's regular files that a device reports at check-in and the server compares with the
/// manifest's (docs/store-format.md): SHA-256 hex of the UTF-8 of <c>&lt;path&gt;\n&lt;sha256&gt;\n</c> for every
/// regular file, sorted by ordinal path; symlinks excluded. The single implementation for agent, server and
/// publisher.
/// </summary>
public static class InventoryDigest
{
    /// <summary>Digest of (path, lower-case hex sha256) pairs; sorts them itself.</summary>
    public static string Compute(IEnumerable<(string Path, string Sha256)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var sorted = files.ToList();
        sorted.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (path, sha) in sorted)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(path));
            hash.AppendData("\n"u8);
            hash.AppendData(Encoding.UTF8.GetBytes(sha));
            hash.AppendData("\n"u8);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Digest of a manifest's files.</summary>
    public static string Of(IEnumerable<ManifestFile> files) => Compute(files.Select(f => (f.Path, f.Sha256)));
}
