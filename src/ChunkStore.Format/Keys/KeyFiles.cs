using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Keys;

/// <summary>
/// The key directory written by <c>orch keys init</c> (docs/store-format.md, "Key files"): raw key bytes in
/// files readable only by their owner (0600).
/// </summary>
public static class KeyFiles
{
    /// <summary>File name of the Ed25519 private key.</summary>
    public const string SigningKeyFile = "release-signing.key";

    /// <summary>File name of the Ed25519 public key.</summary>
    public const string PublicKeyFile = "release-signing.pub";

    /// <summary>File name of the AES-256 product content key.</summary>
    public const string ContentKeyFile = "content.key";

    /// <summary>What <see cref="Generate"/> created.</summary>
    /// <param name="Directory">The key directory.</param>
    /// <param name="PublicKeyHex">Hex of the release public key (safe to share).</param>
    /// <param name="ContentKeyFingerprint">Non-secret fingerprint of the content key.</param>
    public sealed record GeneratedKeys(string Directory, string PublicKeyHex, string ContentKeyFingerprint);

    /// <summary>
    /// Generates a signing key pair and a content key under <paramref name="directory"/> (created if absent) with
    /// mode 0600. Refuses, changing nothing, if any key file already exists: overwriting a release key would
    /// orphan every device that trusts it.
    /// </summary>
    public static GeneratedKeys Generate(string directory)
    {
        var full = Path.GetFullPath(directory);
        foreach (var name in new[] { SigningKeyFile, PublicKeyFile, ContentKeyFile })
            if (File.Exists(Path.Combine(full, name)))
                throw new InvalidInputException($"Key file '{Path.Combine(full, name)}' already exists: keys are never overwritten. Choose an empty --dir, or delete the old keys deliberately first.");
        if (File.Exists(full))
            throw new InvalidInputException($"Key directory '{full}' is a file: pass a directory path for --dir.");
        Directory.CreateDirectory(full);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        using var signing = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        AtomicFile.Write(Path.Combine(full, ContentKeyFile), content.ToBytes(), ownerOnly: true);
        AtomicFile.Write(Path.Combine(full, SigningKeyFile), signing.ToBytes(), ownerOnly: true);
        AtomicFile.Write(Path.Combine(full, PublicKeyFile), signing.PublicKey.ToBytes(), ownerOnly: true);
        return new GeneratedKeys(full, signing.PublicKey.ToString(), content.Fingerprint);
    }

    /// <summary>Loads the signing key from a key directory.</summary>
    public static ReleaseSigningKey LoadSigningKey(string directory) =>
        ReleaseSigningKey.FromBytes(ReadKeyFile(directory, SigningKeyFile));

    /// <summary>Loads the public key from a key directory.</summary>
    public static ReleasePublicKey LoadPublicKey(string directory) =>
        ReleasePublicKey.FromBytes(ReadKeyFile(directory, PublicKeyFile));

    /// <summary>Loads the content key from a key directory.</summary>
    public static ContentKey LoadContentKey(string directory) =>
        ContentKey.FromBytes(ReadKeyFile(directory, ContentKeyFile));

    private static byte[] ReadKeyFile(string directory, string name)
    {
        var path = Path.Combine(Path.GetFullPath(directory), name);
        if (!File.Exists(path))
            throw new InvalidInputException($"Key file '{path}' does not exist: pass the --keys directory created by 'orch keys init --dir DIR'.");
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidInputException($"Key file '{path}' cannot be read ({ex.Message}): run as the key owner or fix the file's permissions.", ex);
        }
    }
}
