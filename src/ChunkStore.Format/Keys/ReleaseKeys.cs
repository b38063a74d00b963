using NSec.Cryptography;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Keys;

/// <summary>The Ed25519 public key that verifies release manifests. Devices and servers need only this one.</summary>
public sealed class ReleasePublicKey
{
    private ReleasePublicKey(PublicKey key) => Key = key;

    internal PublicKey Key { get; }

    /// <summary>Length of the raw key in bytes.</summary>
    public const int Length = 32;

    /// <summary>Imports a raw 32-byte Ed25519 public key; throws <see cref="InvalidInputException"/> otherwise.</summary>
    public static ReleasePublicKey FromBytes(ReadOnlySpan<byte> raw)
    {
        if (raw.Length != Length ||
            !PublicKey.TryImport(SignatureAlgorithm.Ed25519, raw, KeyBlobFormat.RawPublicKey, out var key) || key is null)
            throw new InvalidInputException($"Release public key is not a raw {Length}-byte Ed25519 public key (got {raw.Length} bytes); use the release-signing.pub written by 'orch keys init'.");
        return new ReleasePublicKey(key);
    }

    internal static ReleasePublicKey From(PublicKey key) => new(key);

    /// <summary>The raw 32 bytes.</summary>
    public byte[] ToBytes() => Key.Export(KeyBlobFormat.RawPublicKey);

    /// <summary>Hex of the raw key, for logs and configuration.</summary>
    public override string ToString() => Convert.ToHexStringLower(ToBytes());
}

/// <summary>The Ed25519 private key that signs release manifests. Lives only on the publishing machine.</summary>
public sealed class ReleaseSigningKey : IDisposable
{
    private ReleaseSigningKey(Key key)
    {
        Key = key;
        PublicKey = ReleasePublicKey.From(key.PublicKey);
    }

    internal Key Key { get; }

    /// <summary>The matching public key.</summary>
    public ReleasePublicKey PublicKey { get; }

    /// <summary>Length of the raw private key (seed) in bytes.</summary>
    public const int Length = 32;

    /// <summary>A fresh random key pair.</summary>
    public static ReleaseSigningKey Generate() =>
        new(Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    /// <summary>Imports a raw 32-byte Ed25519 private key; throws <see cref="InvalidInputException"/> otherwise.</summary>
    public static ReleaseSigningKey FromBytes(ReadOnlySpan<byte> raw)
    {
        var parameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        if (raw.Length != Length ||
            !Key.TryImport(SignatureAlgorithm.Ed25519, raw, KeyBlobFormat.RawPrivateKey, out var key, in parameters) || key is null)
            throw new InvalidInputException($"Release signing key is not a raw {Length}-byte Ed25519 private key (got {raw.Length} bytes); use the release-signing.key written by 'orch keys init'.");
        return new ReleaseSigningKey(key);
    }

    /// <summary>The raw 32-byte private key (secret: write only to 0600 files).</summary>
    public byte[] ToBytes() => Key.Export(KeyBlobFormat.RawPrivateKey);

    /// <summary>Signs <paramref name="data"/>; returns the 64-byte signature.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data) => SignatureAlgorithm.Ed25519.Sign(Key, data);

    /// <inheritdoc />
    public void Dispose() => Key.Dispose();
}
