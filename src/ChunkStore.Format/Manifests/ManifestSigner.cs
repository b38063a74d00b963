using NSec.Cryptography;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>Ed25519 signatures over the exact canonical manifest bytes (the <c>.json.sig</c> file).</summary>
public static class ManifestSigner
{
    /// <summary>Signature length in bytes.</summary>
    public const int SignatureLength = 64;

    /// <summary>Signs canonical manifest bytes.</summary>
    public static byte[] Sign(ReadOnlySpan<byte> manifestBytes, ReleaseSigningKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.Sign(manifestBytes);
    }

    /// <summary>True when <paramref name="signature"/> is a valid signature of <paramref name="manifestBytes"/> by <paramref name="key"/>.</summary>
    public static bool Verify(ReadOnlySpan<byte> manifestBytes, ReadOnlySpan<byte> signature, ReleasePublicKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return signature.Length == SignatureLength && SignatureAlgorithm.Ed25519.Verify(key.Key, manifestBytes, signature);
    }

    /// <summary>
    /// Verifies the signature first, then parses and validates. Throws <see cref="IntegrityException"/> for a bad
    /// signature and <see cref="InvalidInputException"/> for a signed but invalid manifest.
    /// </summary>
    public static Manifest VerifyAndParse(ReadOnlyMemory<byte> manifestBytes, ReadOnlySpan<byte> signature, ReleasePublicKey key)
    {
        if (!Verify(manifestBytes.Span, signature, key))
            throw new IntegrityException("Manifest signature does not verify with the release public key (tampered manifest, wrong key, or wrong .sig file).");
        return ManifestSerializer.Parse(manifestBytes);
    }
}
