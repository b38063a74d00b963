using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Codec;

/// <summary>
/// The 32-byte product content key K, and the two subkeys the chunk codec derives from it
/// (docs/store-format.md): one for AES-256-GCM, one for the deterministic nonce. Separate subkeys keep the
/// HMAC and the cipher from ever sharing key material.
/// </summary>
public sealed class ContentKey
{
    /// <summary>Length of the key in bytes.</summary>
    public const int Length = 32;

    private readonly byte[] _key;

    private ContentKey(byte[] key)
    {
        _key = key;
        EncryptionKey = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes("orch/chunk/aes-256-gcm/v1"));
        NonceKey = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes("orch/chunk/nonce/v1"));
        Fingerprint = Convert.ToHexStringLower(SHA256.HashData(EncryptionKey))[..16];
    }

    internal byte[] EncryptionKey { get; }

    internal byte[] NonceKey { get; }

    /// <summary>Short non-secret identifier (for logs and "which key is this" checks).</summary>
    public string Fingerprint { get; }

    /// <summary>A fresh random key.</summary>
    public static ContentKey Generate() => new(RandomNumberGenerator.GetBytes(Length));

    /// <summary>Wraps existing key bytes; throws <see cref="InvalidInputException"/> unless exactly 32 bytes.</summary>
    public static ContentKey FromBytes(ReadOnlySpan<byte> key)
    {
        if (key.Length != Length)
            throw new InvalidInputException($"Content key has {key.Length} bytes: a content key is exactly {Length} bytes (create one with 'orch keys init').");
        return new ContentKey(key.ToArray());
    }

    /// <summary>The raw key bytes (secret: write only to 0600 files).</summary>
    public byte[] ToBytes() => (byte[])_key.Clone();
}
