using System.Security.Cryptography;
using Orchestrator.ChunkStore.Storage;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// The verified canonical bytes of manifests this device fetched (<c>&lt;work&gt;/manifests/&lt;sha256&gt;.json</c>), kept so
/// the next upgrade can fetch the target manifest as a patch against the installed one (docs/store-format.md "Compact
/// manifests"). Only the copy whose SHA-256 the sealed version record names is ever used as a reference, and only after
/// its bytes hash to it again; anything else (a copy of a release never committed, a tampered or truncated file) is
/// ignored or deleted. A reference only helps decoding: what decodes is verified like a fetched JSON manifest.
/// </summary>
public sealed class KeptManifest(string directory, long maxBytes, Action<string> log)
{
    private string PathOf(string sha256) => Path.Combine(directory, sha256 + ".json");

    /// <summary>Keeps verified manifest bytes under their SHA-256 (atomic write; a failure only costs the next patch).</summary>
    public void Keep(ReadOnlySpan<byte> bytes, string sha256)
    {
        if (bytes.Length > maxBytes) return;
        try
        {
            Directory.CreateDirectory(directory);
            AtomicFile.Write(PathOf(sha256), bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log($"could not keep a copy of manifest {sha256} ({e.Message}); the next upgrade fetches its manifest without a patch");
        }
    }

    /// <summary>
    /// The kept bytes of the manifest with SHA-256 <paramref name="sha256"/> (the sealed record's), read at most
    /// <c>download.maxManifestBytes</c> and hashed again; null, with the reason in <paramref name="why"/>, when there is
    /// no such copy or it does not hash to the sealed value (then it is deleted).
    /// </summary>
    public byte[]? Read(string? sha256, out string why)
    {
        why = "";
        if (sha256 is null || sha256.Length != 64 || !sha256.All(char.IsAsciiHexDigitLower))
        {
            why = "the installed-version record names no manifest SHA-256";
            return null;
        }
        var path = PathOf(sha256);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) { why = "no copy of the installed manifest is kept"; return null; }
            if (info.Length > maxBytes)
            {
                why = $"the kept copy of the installed manifest has {info.Length} bytes, more than download.maxManifestBytes ({maxBytes}); deleted";
                DurableFile.TryDelete(path);
                return null;
            }
            var bytes = File.ReadAllBytes(path);
            if (Convert.ToHexStringLower(SHA256.HashData(bytes)) != sha256)
            {
                why = $"the kept copy of the installed manifest does not hash to the sealed SHA-256 {sha256} (damaged or tampered); deleted, not used";
                DurableFile.TryDelete(path);
                return null;
            }
            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = $"the kept copy of the installed manifest cannot be read ({e.Message})";
            return null;
        }
    }

    /// <summary>Deletes every kept copy but the installed manifest's (after a commit).</summary>
    public void KeepOnly(string? sha256)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var file in Directory.EnumerateFiles(directory))
            if (sha256 is null || Path.GetFileName(file) != sha256 + ".json")
                DurableFile.TryDelete(file);
    }
}
