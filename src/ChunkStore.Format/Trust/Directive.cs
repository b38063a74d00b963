using System.Text.Json;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>An operator's permission for one device to install an older version (a rollback).</summary>
/// <param name="FromVersionId">The version ID the device has installed.</param>
/// <param name="ToVersionId">The older version ID it may install.</param>
/// <param name="RolloutId">The rollout that was rolled back.</param>
public sealed record DowngradeAuthorization(long FromVersionId, long ToVersionId, string RolloutId);

/// <summary>
/// The director-signed answer to one check-in (docs/protocol.md "Directive"): bound to the device, its product and
/// the nonce it sent, valid for minutes; pins the target manifest by SHA-256 and carries the device's floor.
/// </summary>
/// <param name="Schema">1.</param>
/// <param name="Type"><c>directive</c>.</param>
/// <param name="DeviceId">Device it is for.</param>
/// <param name="Product">Product the device is registered for.</param>
/// <param name="Nonce">The nonce of the check-in it answers.</param>
/// <param name="IssuedUtc">When the director signed it.</param>
/// <param name="ExpiresUtc">After this the agent refuses it.</param>
/// <param name="Action">None, Upgrade or Repair.</param>
/// <param name="TargetVersion">Version string for Upgrade/Repair.</param>
/// <param name="TargetVersionId">Version ID for Upgrade/Repair.</param>
/// <param name="ManifestPath">Store path of the target manifest.</param>
/// <param name="ManifestSha256">SHA-256 (hex) of the exact target manifest bytes.</param>
/// <param name="RepairFiles">For Repair: the files to restore.</param>
/// <param name="FloorVersionId">Highest version ID the server knows the device installed (lowered only by a completed authorized downgrade).</param>
/// <param name="Downgrade">Present when an operator rolled the device back below its floor.</param>
/// <param name="ManifestBytes">Length of the exact target manifest: the agent reads no more than this from any source.</param>
public sealed record Directive(int Schema, string Type, string DeviceId, string Product, string Nonce, DateTimeOffset IssuedUtc,
    DateTimeOffset ExpiresUtc, UpdateAction Action, string? TargetVersion, long? TargetVersionId, string? ManifestPath, string? ManifestSha256,
    IReadOnlyList<string>? RepairFiles, long FloorVersionId, DowngradeAuthorization? Downgrade, long? ManifestBytes = null)
{
    /// <summary>Largest directive envelope accepted.</summary>
    public const int MaxBytes = 256 * 1024;

    /// <summary>Clock skew tolerated between the director and the device.</summary>
    public static readonly TimeSpan AllowedSkew = TimeSpan.FromMinutes(5);

    /// <summary>The payload bytes that are signed.</summary>
    public byte[] ToPayload() => JsonSerializer.SerializeToUtf8Bytes(this, TrustJsonContext.Default.Directive);

    /// <summary>Parses a payload (after its signatures were verified).</summary>
    public static Directive Parse(byte[] payload)
    {
        Directive? d;
        try { d = JsonSerializer.Deserialize(payload, TrustJsonContext.Default.Directive); }
        catch (JsonException ex) { throw new InvalidInputException($"directive is not valid JSON of schema 1: {ex.Message}", ex); }
        if (d is null || d.Schema != 1 || d.Type != "directive" || string.IsNullOrEmpty(d.DeviceId) || string.IsNullOrEmpty(d.Nonce))
            throw new InvalidInputException("directive is not a schema-1 directive with a device id and a nonce.");
        if (d.Action != UpdateAction.None && (d.TargetVersionId is null || d.ManifestPath is null || d.ManifestSha256 is null))
            throw new InvalidInputException($"directive says {d.Action} without targetVersionId, manifestPath and manifestSha256.");
        if (d.ManifestBytes is <= 0)
            throw new InvalidInputException($"directive pins a manifest of {d.ManifestBytes} bytes; a manifest is at least one byte.");
        return d;
    }

    /// <summary>
    /// Verifies a directive envelope (director threshold of <paramref name="anchor"/>, single-signed or batch-signed
    /// with its inclusion proof) and binds it to this check-in: device, product, nonce, validity window; the same rules
    /// for both forms. Throws <see cref="DirectiveRejectedException"/> naming the reason.
    /// </summary>
    public static Directive VerifyFor(string? envelopeJson, TrustAnchor anchor, string deviceId, string product, string nonce, DateTimeOffset now)
    {
        if (string.IsNullOrEmpty(envelopeJson))
            throw new DirectiveRejectedException("the check-in answer carries no directive (unsigned answer); refused, nothing changed");
        Directive d;
        try
        {
            var envelope = SignedEnvelope.Parse(System.Text.Encoding.UTF8.GetBytes(envelopeJson), MaxBytes, "directive");
            d = Parse(anchor.VerifyEnvelope(envelope, TrustRoles.Director, "directive", allowBatch: true));
        }
        catch (Exception e) when (e is IntegrityException or InvalidInputException)
        {
            throw new DirectiveRejectedException($"directive refused: {e.Message}");
        }
        if (d.DeviceId != deviceId)
            throw new DirectiveRejectedException($"directive refused: it is for device '{d.DeviceId}', this is '{deviceId}'");
        if (d.Product != product)
            throw new DirectiveRejectedException($"directive refused: it is for product '{d.Product}', this device runs '{product}'");
        if (d.Nonce != nonce)
            throw new DirectiveRejectedException($"directive refused: it answers nonce {d.Nonce}, this check-in sent {nonce} (replayed answer)");
        if (d.ExpiresUtc <= now)
            throw new DirectiveRejectedException($"directive refused: it expired at {d.ExpiresUtc:O} (now {now:O})");
        if (d.IssuedUtc > now + AllowedSkew)
            throw new DirectiveRejectedException($"directive refused: it was issued at {d.IssuedUtc:O}, in the future (now {now:O})");
        return d;
    }
}

/// <summary>A check-in answer's directive is missing, badly signed, expired or bound to something else.</summary>
public sealed class DirectiveRejectedException(string message) : Exception(message);
