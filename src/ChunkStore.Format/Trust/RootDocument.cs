using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>The key roles a root document names.</summary>
public static class TrustRoles
{
    /// <summary>Offline key(s) that sign root documents.</summary>
    public const string Root = "root";
    /// <summary>Offline key(s) that sign release manifests, delta manifests and product floors.</summary>
    public const string Release = "release";
    /// <summary>Online key(s), held by the nodes, that sign per-device directives.</summary>
    public const string Director = "director";

    /// <summary>Every role, in document order.</summary>
    public static readonly IReadOnlyList<string> All = [Root, Release, Director];
}

/// <summary>Keys and threshold of one role.</summary>
/// <param name="KeyIds">Key ids (entries of <see cref="RootDocument.Keys"/>).</param>
/// <param name="Threshold">How many distinct keys of the role must sign.</param>
public sealed record RoleKeys(IReadOnlyList<string> KeyIds, int Threshold);

/// <summary>
/// Root document (docs/store-format.md "Trust documents"): the role keys and thresholds, signed by the root role.
/// Version N+1 must be signed by the threshold of version N's root keys and by its own, so a device provisioned
/// with any root can follow the chain to the newest one.
/// </summary>
/// <param name="Schema">1.</param>
/// <param name="Type"><c>root</c>.</param>
/// <param name="Version">1, 2, ... (one more than the root it replaces).</param>
/// <param name="CreatedUtc">When it was made.</param>
/// <param name="ExpiresUtc">After this the agent refuses directives until a newer root is published.</param>
/// <param name="Keys">Key id → hex of the raw 32-byte Ed25519 public key.</param>
/// <param name="Roles">Role name (<see cref="TrustRoles"/>) → keys and threshold.</param>
public sealed record RootDocument(int Schema, string Type, long Version, DateTimeOffset CreatedUtc, DateTimeOffset ExpiresUtc,
    IReadOnlyDictionary<string, string> Keys, IReadOnlyDictionary<string, RoleKeys> Roles)
{
    /// <summary>Largest root envelope accepted (bounds what a hostile mirror can make a device read).</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>Most root versions an agent follows in one update (a longer chain means re-provisioning).</summary>
    public const int MaxChainLength = 32;

    /// <summary>The payload bytes that are signed.</summary>
    public byte[] ToPayload() => JsonSerializer.SerializeToUtf8Bytes(this, TrustJsonContext.Default.RootDocument);

    /// <summary>Public keys of <paramref name="role"/>, by key id.</summary>
    public IReadOnlyDictionary<string, ReleasePublicKey> KeysOf(string role)
    {
        var result = new Dictionary<string, ReleasePublicKey>(StringComparer.Ordinal);
        foreach (var id in Roles[role].KeyIds) result[id] = ReleasePublicKey.FromBytes(Convert.FromHexString(Keys[id]));
        return result;
    }

    /// <summary>Threshold of <paramref name="role"/>.</summary>
    public int ThresholdOf(string role) => Roles[role].Threshold;

    /// <summary>Parses and checks the structure (every role present, thresholds reachable, key ids match their keys).</summary>
    public static RootDocument Parse(byte[] payload, string what)
    {
        RootDocument? d;
        try { d = JsonSerializer.Deserialize(payload, TrustJsonContext.Default.RootDocument); }
        catch (JsonException ex) { throw new InvalidInputException($"{what} is not a root document: {ex.Message}", ex); }
        if (d is null || d.Schema != 1 || d.Type != "root" || d.Version < 1 || d.Keys is null || d.Roles is null)
            throw new InvalidInputException($"{what} is not a schema-1 root document with version >= 1, keys and roles.");
        foreach (var (id, hex) in d.Keys)
        {
            ReleasePublicKey key;
            try { key = ReleasePublicKey.FromBytes(Convert.FromHexString(hex)); }
            catch (FormatException ex) { throw new InvalidInputException($"{what}: key '{id}' is not hex.", ex); }
            if (TrustKeyIds.Of(key) != id) throw new InvalidInputException($"{what}: key id '{id}' does not match its key (expected {TrustKeyIds.Of(key)}).");
        }
        foreach (var role in TrustRoles.All)
        {
            if (!d.Roles.TryGetValue(role, out var r) || r?.KeyIds is null)
                throw new InvalidInputException($"{what} does not name the '{role}' role.");
            if (r.Threshold < 1 || r.Threshold > r.KeyIds.Distinct().Count())
                throw new InvalidInputException($"{what}: role '{role}' has threshold {r.Threshold} with {r.KeyIds.Count} key(s); it must be 1..keys.");
            foreach (var id in r.KeyIds)
                if (!d.Keys.ContainsKey(id)) throw new InvalidInputException($"{what}: role '{role}' names unknown key '{id}'.");
        }
        if (d.ExpiresUtc <= d.CreatedUtc) throw new InvalidInputException($"{what}: expiresUtc is not after createdUtc.");
        return d;
    }

    /// <summary>Makes and signs a root document with the given role keys (thresholds 1).</summary>
    public static SignedEnvelope Create(long version, ReleasePublicKey[] root, ReleasePublicKey[] release, ReleasePublicKey[] director,
        IEnumerable<ReleaseSigningKey> signers, DateTimeOffset now, TimeSpan lifetime)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var k in root.Concat(release).Concat(director)) keys[TrustKeyIds.Of(k)] = k.ToString();
        RoleKeys Role(ReleasePublicKey[] ks) => new(ks.Select(TrustKeyIds.Of).ToList(), 1);
        var doc = new RootDocument(1, "root", version, Trim(now), Trim(now + lifetime), keys,
            new Dictionary<string, RoleKeys>(StringComparer.Ordinal)
            {
                [TrustRoles.Root] = Role(root), [TrustRoles.Release] = Role(release), [TrustRoles.Director] = Role(director),
            });
        return SignedEnvelope.Sign(doc.ToPayload(), signers);
    }

    internal static DateTimeOffset Trim(DateTimeOffset t) => new(t.UtcTicks - t.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
}

/// <summary>
/// What a device trusts: a root document it verified, or (legacy provisioning) a bare release public key with no
/// director, under which directives cannot be required. Pure: no I/O.
/// </summary>
public sealed class TrustAnchor
{
    private TrustAnchor(RootDocument? root, byte[] bytes, ReleasePublicKey? legacy)
    {
        Root = root;
        Bytes = bytes;
        _legacy = legacy;
    }

    private readonly ReleasePublicKey? _legacy;

    /// <summary>The verified root document; null for a legacy bare release key.</summary>
    public RootDocument? Root { get; }

    /// <summary>The bytes this anchor was read from (the sealed hidden item).</summary>
    public byte[] Bytes { get; }

    /// <summary>True when the device was provisioned with a root document: directives are then required.</summary>
    public bool RequiresDirectives => Root is not null;

    /// <summary>
    /// Reads a trust anchor: a raw 32-byte Ed25519 key (legacy: the release key), or a root envelope signed by the
    /// threshold of its own root keys.
    /// </summary>
    public static TrustAnchor Load(byte[] bytes, string what)
    {
        if (bytes.Length == ReleasePublicKey.Length) return new TrustAnchor(null, bytes, ReleasePublicKey.FromBytes(bytes));
        var envelope = SignedEnvelope.Parse(bytes, RootDocument.MaxBytes, what);
        var payload = envelope.PayloadBytes(what);
        var doc = RootDocument.Parse(payload, what);
        if (envelope.CountValid(payload, doc.KeysOf(TrustRoles.Root)) < doc.ThresholdOf(TrustRoles.Root))
            throw new IntegrityException($"{what}: root version {doc.Version} is not signed by {doc.ThresholdOf(TrustRoles.Root)} of its own root keys.");
        return new TrustAnchor(doc, bytes, null);
    }

    /// <summary>
    /// Verifies the next root version against this one: version + 1, signed by this root's root threshold and by the
    /// new document's own. Returns the new anchor; throws <see cref="IntegrityException"/> or <see cref="InvalidInputException"/>.
    /// </summary>
    public TrustAnchor Next(byte[] bytes)
    {
        if (Root is null) throw new InvalidInputException("a legacy trust root (bare release key) has no root chain to follow; re-provision the device with a root document.");
        var what = $"root version {Root.Version + 1}";
        var envelope = SignedEnvelope.Parse(bytes, RootDocument.MaxBytes, what);
        var payload = envelope.PayloadBytes(what);
        var doc = RootDocument.Parse(payload, what);
        if (doc.Version != Root.Version + 1)
            throw new IntegrityException($"{what}: the document says version {doc.Version}; a root chain goes one version at a time.");
        if (envelope.CountValid(payload, Root.KeysOf(TrustRoles.Root)) < Root.ThresholdOf(TrustRoles.Root))
            throw new IntegrityException($"{what} is not signed by {Root.ThresholdOf(TrustRoles.Root)} of the root keys of version {Root.Version}.");
        if (envelope.CountValid(payload, doc.KeysOf(TrustRoles.Root)) < doc.ThresholdOf(TrustRoles.Root))
            throw new IntegrityException($"{what} is not signed by {doc.ThresholdOf(TrustRoles.Root)} of its own root keys.");
        return new TrustAnchor(doc, bytes, null);
    }

    /// <summary>Release keys: those of the root, or the legacy key.</summary>
    public IReadOnlyList<ReleasePublicKey> ReleaseKeys =>
        Root is null ? [_legacy!] : Root.KeysOf(TrustRoles.Release).Values.ToList();

    /// <summary>
    /// Verifies an envelope signed by the threshold of <paramref name="role"/>; returns its payload. With
    /// <paramref name="allowBatch"/> (directives only) an envelope may instead carry a <see cref="BatchInclusion"/>:
    /// its shape is checked, the signatures must cover the batch root (<see cref="DirectiveBatch.SignedMessage"/>), and
    /// the payload must lead to that root along its path. Any other envelope with a batch proof is refused.
    /// </summary>
    public byte[] VerifyEnvelope(SignedEnvelope envelope, string role, string what, bool allowBatch = false)
    {
        var payload = envelope.PayloadBytes(what);
        if (envelope.Batch is { } batch)
        {
            if (!allowBatch || Root is null)
                throw new IntegrityException($"{what} carries a batch inclusion proof; only directives verified against a root document are batch-signed.");
            var (root, path) = DirectiveBatch.Decode(batch, what);
            var neededBatch = Root.ThresholdOf(role);
            var validBatch = envelope.CountValid(DirectiveBatch.SignedMessage(root, batch.Size), Root.KeysOf(role));
            if (validBatch < neededBatch)
                throw new IntegrityException(
                    $"{what}: the batch root carries {validBatch} valid signature(s) of the '{role}' role of root version {Root.Version}; {neededBatch} required (a signature of another batch, or not the {role}'s).");
            DirectiveBatch.CheckInclusion(payload, batch, root, path, what);
            return payload;
        }
        if (Root is null)
        {
            if (role == TrustRoles.Release
                && envelope.CountValid(payload, new Dictionary<string, ReleasePublicKey> { [TrustKeyIds.Of(_legacy!)] = _legacy! }) >= 1)
                return payload;
            throw new IntegrityException($"{what} is not signed by the release key this device trusts.");
        }
        var needed = Root.ThresholdOf(role);
        var valid = envelope.CountValid(payload, Root.KeysOf(role));
        if (valid < needed)
            throw new IntegrityException($"{what} carries {valid} valid signature(s) of the '{role}' role of root version {Root.Version}; {needed} required.");
        return payload;
    }
}
