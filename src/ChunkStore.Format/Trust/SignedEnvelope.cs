using System.Security.Cryptography;
using System.Text.Json;
using NSec.Cryptography;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>One signature of a <see cref="SignedEnvelope"/>.</summary>
/// <param name="KeyId">Id of the signing key (<see cref="TrustKeyIds.Of"/>).</param>
/// <param name="Sig">Base64 of the 64-byte Ed25519 signature over the exact payload bytes.</param>
public sealed record EnvelopeSignature(string KeyId, string Sig);

/// <summary>
/// A signed trust document (root document, directive, product floor): the payload travels as base64 of its exact
/// bytes, so a signature covers precisely what is parsed afterwards and no canonical re-serialization is needed.
/// </summary>
/// <param name="Payload">Base64 of the payload bytes (UTF-8 JSON of the document).</param>
/// <param name="Signatures">Signatures over the decoded payload bytes, or for a batch-signed directive over <see cref="DirectiveBatch.SignedMessage"/>.</param>
/// <param name="Batch">
/// Only on a batch-signed directive: the payload's place in the Merkle tree whose root the signatures cover. Absent
/// (not written) on every other envelope; <see cref="TrustAnchor.VerifyEnvelope"/> refuses it where it is not allowed.
/// </param>
public sealed record SignedEnvelope(string Payload, IReadOnlyList<EnvelopeSignature> Signatures,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    BatchInclusion? Batch = null)
{
    /// <summary>Most signatures an envelope may carry (bounds the verification work a hostile server can cause).</summary>
    public const int MaxSignatures = 16;

    /// <summary>Signs <paramref name="payload"/> with every key in <paramref name="keys"/>.</summary>
    public static SignedEnvelope Sign(byte[] payload, IEnumerable<ReleaseSigningKey> keys) =>
        new(Convert.ToBase64String(payload), keys.Select(k => SignatureBy(k, TrustKeyIds.Of(k.PublicKey), payload)).ToList());

    /// <summary>
    /// Signs <paramref name="payload"/> with one key whose id (<see cref="TrustKeyIds.Of"/>) the caller computed once: a
    /// signer of many documents with the same key does not hash its public key again for each.
    /// </summary>
    public static SignedEnvelope Sign(byte[] payload, ReleaseSigningKey key, string keyId) =>
        new(Convert.ToBase64String(payload), [SignatureBy(key, keyId, payload)]);

    private static EnvelopeSignature SignatureBy(ReleaseSigningKey key, string keyId, byte[] payload) =>
        new(keyId, Convert.ToBase64String(key.Sign(payload)));

    /// <summary>The envelope as UTF-8 JSON bytes.</summary>
    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, TrustJsonContext.Default.SignedEnvelope);

    /// <summary>The envelope as a JSON string (for the check-in answer's <c>directive</c> field).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, TrustJsonContext.Default.SignedEnvelope);

    /// <summary>Parses an envelope of at most <paramref name="maxBytes"/>; <see cref="InvalidInputException"/> names what is wrong.</summary>
    public static SignedEnvelope Parse(ReadOnlySpan<byte> bytes, int maxBytes, string what)
    {
        if (bytes.Length > maxBytes)
            throw new InvalidInputException($"{what} is {bytes.Length} bytes, more than the {maxBytes} allowed; refused unread.");
        SignedEnvelope? e;
        try
        {
            e = JsonSerializer.Deserialize(bytes, TrustJsonContext.Default.SignedEnvelope);
        }
        catch (JsonException ex)
        {
            throw new InvalidInputException($"{what} is not a signed envelope ({{\"payload\",\"signatures\"}}): {ex.Message}", ex);
        }
        if (e is null || string.IsNullOrEmpty(e.Payload) || e.Signatures is null)
            throw new InvalidInputException($"{what} has no payload or no signatures list.");
        if (e.Signatures.Count > MaxSignatures)
            throw new InvalidInputException($"{what} carries {e.Signatures.Count} signatures, more than {MaxSignatures}.");
        return e;
    }

    /// <summary>The decoded payload bytes.</summary>
    public byte[] PayloadBytes(string what)
    {
        try { return Convert.FromBase64String(Payload); }
        catch (FormatException ex) { throw new InvalidInputException($"{what}: payload is not base64.", ex); }
    }

    /// <summary>
    /// Number of distinct keys of <paramref name="allowed"/> (key id → key) with a valid signature over the payload.
    /// Signatures by unknown keys and duplicates count nothing.
    /// </summary>
    public int CountValid(ReadOnlySpan<byte> payload, IReadOnlyDictionary<string, ReleasePublicKey> allowed)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in Signatures)
        {
            if (s.KeyId is null || s.Sig is null || seen.Contains(s.KeyId) || !allowed.TryGetValue(s.KeyId, out var key)) continue;
            byte[] sig;
            try { sig = Convert.FromBase64String(s.Sig); }
            catch (FormatException) { continue; }
            if (sig.Length == 64 && SignatureAlgorithm.Ed25519.Verify(key.Key, payload, sig)) seen.Add(s.KeyId);
        }
        return seen.Count;
    }
}

/// <summary>Key ids of the trust documents.</summary>
public static class TrustKeyIds
{
    /// <summary>First 8 bytes of SHA-256 of the raw public key, as 16 lower-case hex characters.</summary>
    public static string Of(ReleasePublicKey key) => Convert.ToHexStringLower(SHA256.HashData(key.ToBytes()).AsSpan(0, 8));
}
