using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>
/// The envelope the signed binary indexes of a release share (<see cref="PackIndex"/>, <see cref="ChunkPatchIndex"/>):
/// a body that starts with a 4-byte magic, a format version byte and three zero bytes, followed by the release key's
/// Ed25519 signature over the body. The signature is checked before any byte of the body is parsed.
/// </summary>
internal static class SignedIndexEnvelope
{
    /// <summary>
    /// The body of <paramref name="signed"/> once its signature verified with <paramref name="key"/>. Throws
    /// <see cref="InvalidInputException"/> when it is too short to hold a header and a signature, and
    /// <see cref="IntegrityException"/> when the signature does not verify.
    /// </summary>
    public static ReadOnlySpan<byte> VerifiedBody(ReadOnlySpan<byte> signed, ReleasePublicKey key, int headerLength, string name)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (signed.Length < headerLength + ManifestSigner.SignatureLength)
            throw new InvalidInputException($"{name} is {signed.Length} bytes, shorter than its header and signature: not a {name.ToLowerInvariant()}.");
        var body = signed[..^ManifestSigner.SignatureLength];
        if (!ManifestSigner.Verify(body, signed[^ManifestSigner.SignatureLength..], key))
            throw new IntegrityException($"{name} signature does not verify with the release public key (tampered index or wrong key).");
        return body;
    }

    /// <summary>
    /// Checks the body's magic, format version and zero reserved bytes; <paramref name="otherwise"/> says what a reader
    /// does instead when the version is not its own.
    /// </summary>
    public static void CheckHeader(ReadOnlySpan<byte> body, int headerLength, string magic, byte version, string name, string otherwise)
    {
        if (body.Length < headerLength || body.Length < 8 || !System.Text.Encoding.ASCII.GetString(body[..4]).Equals(magic, StringComparison.Ordinal))
            throw new InvalidInputException($"{name} does not start with \"{magic}\": not a {name.ToLowerInvariant()}.");
        if (body[4] != version)
            throw new InvalidInputException($"{name} format version {body[4]} is not supported (this code reads version {version}); {otherwise}.");
        if (body[5] != 0 || body[6] != 0 || body[7] != 0)
            throw new InvalidInputException($"{name} reserved bytes 5..7 are not zero.");
    }
}
