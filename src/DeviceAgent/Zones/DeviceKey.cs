using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>
/// The key that seals hidden-zone items: HKDF-SHA256 over the machine secret file, bound to the device ID.
/// Copying the hidden folder to another machine (or another device ID) makes it unreadable.
/// </summary>
public sealed class DeviceKey : IDisposable
{
    private static readonly byte[] Salt = Encoding.UTF8.GetBytes("orchestrator/orch-agent/hidden-zone/v1");
    private readonly byte[] _key;

    private DeviceKey(byte[] key) => _key = key;

    /// <summary>Derives the key from the machine secret file and device ID.</summary>
    /// <exception cref="HiddenZoneException">The machine secret file is missing or too short.</exception>
    public static DeviceKey Derive(string machineSecretFile, string deviceId)
    {
        if (!File.Exists(machineSecretFile))
            throw new HiddenZoneException($"machine secret file '{machineSecretFile}' does not exist; the hidden zone cannot be opened on this machine (check machineSecretFile in agent.json)");
        var secret = File.ReadAllBytes(machineSecretFile);
        if (secret.Length < 16)
            throw new HiddenZoneException($"machine secret file '{machineSecretFile}' holds {secret.Length} bytes; it needs at least 16 bytes of machine-unique data");
        var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, 32, Salt, Encoding.UTF8.GetBytes("device:" + deviceId));
        CryptographicOperations.ZeroMemory(secret);
        return new DeviceKey(key);
    }

    /// <summary>AES-256-GCM seal with a random nonce; <paramref name="label"/> is authenticated so items cannot be swapped.</summary>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, string label)
    {
        var output = new byte[Magic.Length + 12 + 16 + plaintext.Length];
        Magic.CopyTo(output, 0);
        var nonce = output.AsSpan(Magic.Length, 12);
        RandomNumberGenerator.Fill(nonce);
        var tag = output.AsSpan(Magic.Length + 12, 16);
        var cipher = output.AsSpan(Magic.Length + 28);
        using var gcm = new AesGcm(_key, 16);
        gcm.Encrypt(nonce, plaintext, cipher, tag, Encoding.UTF8.GetBytes(label));
        return output;
    }

    /// <summary>Opens a sealed item; null when it was not sealed by this key under this label or was altered.</summary>
    public byte[]? Open(ReadOnlySpan<byte> sealedBytes, string label)
    {
        if (sealedBytes.Length < Magic.Length + 28 || !sealedBytes[..Magic.Length].SequenceEqual(Magic)) return null;
        var nonce = sealedBytes.Slice(Magic.Length, 12);
        var tag = sealedBytes.Slice(Magic.Length + 12, 16);
        var cipher = sealedBytes[(Magic.Length + 28)..];
        var plain = new byte[cipher.Length];
        using var gcm = new AesGcm(_key, 16);
        try
        {
            gcm.Decrypt(nonce, cipher, tag, plain, Encoding.UTF8.GetBytes(label));
            return plain;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    private static readonly byte[] Magic = "OHZ1"u8.ToArray();

    /// <summary>Wipes the key from memory.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_key);
}
