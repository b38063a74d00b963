using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Packs;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Trust;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// The signed documents of one install, fetched and verified before anything is planned: the target manifest (a release
/// key of the trust root, product, the version and SHA-256 the directive assigns, for a repair the sealed record's
/// manifest, not expired), an offered delta manifest (signed, for exactly this upgrade; any doubt means chunks) and the
/// target's pack index and chunk patch index (signed, for exactly the target manifest; any doubt means chunk objects, or
/// the chunks rather than their patches).
/// </summary>
internal sealed class ReleaseVerification(AgentConfig config, TimeProvider time, Action<string> log, KeptManifest kept)
{
    /// <summary>
    /// Fetches and verifies the offered delta manifest: signed by the trust root, for this product, from the installed
    /// version to exactly the verified target manifest. Any problem means no delta (chunks), never a failed session.
    /// </summary>
    public async Task<DeltaManifest?> TryFetchDeltaAsync(StoreDownloader downloader, string path, Manifest target, long targetManifestBytes,
        InstalledVersion installed, TrustAnchor anchor, CancellationToken ct)
    {
        if (!StoreLayout.IsDeltaManifestPath(path))
        {
            log($"ignoring delta path '{path}' from the gateway: not deltas/<product>/<from>/<to>.json; downloading chunks");
            return null;
        }
        try
        {
            // A delta manifest has at most one entry per file of the target and no more parts than the target has chunks,
            // so it is bounded by the target manifest it describes (plus the fixed header), never by the global maximum.
            var cap = Math.Min(config.Download.MaxManifestBytes, 2 * targetManifestBytes + 64 * 1024);
            return await downloader.FetchVerifiedAsync([(path, cap), (StoreLayout.SignaturePathFor(path), ManifestSigner.SignatureLength)], files =>
            {
                DeltaManifest delta;
                try
                {
                    delta = ByAnyReleaseKey(anchor, key => DeltaManifestSerializer.VerifyAndParse(files[0], files[1], key));
                }
                catch (Exception e) when (e is IntegrityException or InvalidInputException)
                {
                    throw new ContentRejectedException($"delta '{path}': {e.Message}", e);
                }
                if (delta.Product != config.Product || delta.To.VersionId != target.VersionId || delta.To.Version != target.Version
                    || delta.To.InventoryDigest != target.InventoryDigest || delta.From.VersionId != installed.VersionId)
                    throw new ContentRejectedException($"delta '{path}' goes {delta.Product} {delta.From.VersionId} -> {delta.To.VersionId}, this upgrade is {config.Product} {installed.VersionId} -> {target.VersionId}");
                return delta;
            }, ct);
        }
        catch (DownloadFailedException e)
        {
            log($"delta '{path}' not usable ({e.Message}); downloading chunks");
            return null;
        }
    }

    /// <summary>
    /// Fetches and verifies the target's pack index (<c>manifests/&lt;product&gt;/&lt;version&gt;.packs</c>): signed by a
    /// release key of the trust root, for exactly the verified manifest bytes. Asked once per source (a store published
    /// without packs lacks it); any problem means the chunks are fetched as their own objects, never a failed session.
    /// Returns where the manifest's chunks lie in packs, or null.
    /// </summary>
    public async Task<Dictionary<ChunkId, PackedChunk>?> TryFetchPackIndexAsync(StoreDownloader downloader, string manifestPath, Manifest manifest,
        string manifestSha256, TrustAnchor anchor, CancellationToken ct)
    {
        var path = StoreLayout.PackIndexPathFor(manifestPath);
        var order = PackIndex.ChunkOrder(manifest);
        try
        {
            return await downloader.FetchVerifiedAsync([(path, PackIndex.MaxSignedLength(order.Count))], files =>
            {
                try
                {
                    return ByAnyReleaseKey(anchor, key => PackIndex.VerifyAndParse(files[0], key, manifestSha256, order.Count)).Locate(order);
                }
                catch (Exception e) when (e is IntegrityException or InvalidInputException)
                {
                    throw new ContentRejectedException($"pack index '{path}': {e.Message}", e);
                }
            }, ct, rounds: 1);
        }
        catch (DownloadFailedException e)
        {
            log($"no usable pack index ({e.Message}); fetching each chunk as its own object");
            return null;
        }
    }

    /// <summary>
    /// Fetches and verifies the target's chunk patch index (<c>manifests/&lt;product&gt;/&lt;version&gt;.chunkpatches</c>,
    /// docs/store-format.md "Chunk patches"): signed by a release key of the trust root, for exactly the verified manifest
    /// bytes. Asked once per source (most releases have none); any problem means the chunks themselves are fetched,
    /// never a failed session. Returns the patched chunks by chunk id, or null.
    /// </summary>
    public async Task<Dictionary<ChunkId, PatchedChunk>?> TryFetchChunkPatchesAsync(StoreDownloader downloader, string manifestPath, Manifest manifest,
        string manifestSha256, TrustAnchor anchor, CancellationToken ct)
    {
        var path = StoreLayout.ChunkPatchIndexPathFor(manifestPath);
        var order = PackIndex.ChunkOrder(manifest);
        try
        {
            return await downloader.FetchVerifiedAsync([(path, ChunkPatchIndex.MaxSignedLength(order.Count))], files =>
            {
                try
                {
                    return ByAnyReleaseKey(anchor, key => ChunkPatchIndex.VerifyAndParse(files[0], key, manifestSha256, order.Count)).Resolve(order);
                }
                catch (Exception e) when (e is IntegrityException or InvalidInputException)
                {
                    throw new ContentRejectedException($"chunk patch index '{path}': {e.Message}", e);
                }
            }, ct, rounds: 1);
        }
        catch (DownloadFailedException e)
        {
            log($"no usable chunk patch index ({e.Message}); fetching the chunks themselves");
            return null;
        }
    }

    /// <summary>
    /// Fetches the target manifest and its signature (no more bytes than the directive pins) and verifies both; a source
    /// that serves anything else is rejected and the next one asked.
    /// </summary>
    public async Task<(Manifest Manifest, string Sha256, long Length)> FetchManifestAsync(StoreDownloader downloader, CheckInResponse response,
        VersionRecord? record, Directive? directive, TrustAnchor anchor, CancellationToken ct)
    {
        var path = response.ManifestPath!;
        // The directive pins the manifest's exact length with its hash: no source gets to send a byte more.
        var cap = config.Download.MaxManifestBytes;
        if (directive?.ManifestBytes is { } pinned)
        {
            if (pinned > cap)
                throw new SessionFailedException(FailureStage.Verify,
                    $"the directive pins a manifest of {pinned} bytes for '{path}', more than download.maxManifestBytes ({cap}); raise download.maxManifestBytes in the agent's configuration if releases really are this large");
            cap = pinned;
        }
        if (response.CompactManifests is { Count: > 0 } offered
            && await TryFetchCompactAsync(downloader, response, offered, cap, directive?.ManifestBytes, record, directive, anchor, ct) is { } compact)
            return compact;
        try
        {
            return await downloader.FetchVerifiedAsync([(path, cap), (StoreLayout.SignaturePathFor(path), ManifestSigner.SignatureLength)], files =>
            {
                var (manifest, sha) = Verify(files[0], files[1], anchor, path, response, record, directive);
                kept.Keep(files[0], sha);
                return (manifest, sha, (long)files[0].Length);
            }, ct);
        }
        catch (DownloadFailedException e)
        {
            throw new SessionFailedException(e.ContentRejected ? FailureStage.Verify : FailureStage.Download, e.Message, e);
        }
    }

    /// <summary>Most compact encodings tried before the JSON (the gateway offers a patch and the whole frame).</summary>
    private const int MaxCompactTried = 2;

    /// <summary>
    /// Tries the compact encodings the gateway offers (docs/store-format.md "Compact manifests"), best first: a patch only
    /// against exactly the installed manifest whose verified copy this device keeps, fetched with the manifest's cap
    /// (<paramref name="cap"/>: the directive's pinned length, else download.maxManifestBytes; one round) and decoded into
    /// exactly the length the frame header declares, which must be the directive's <paramref name="pinned"/> length (or,
    /// without a directive, at most the cap); then verified like the JSON: signature, product, version, the directive's
    /// SHA-256. Memory: the reference (at most download.maxManifestBytes), the encoding and the decoded manifest (each at
    /// most <paramref name="cap"/>), plus a zstd decoder context. Anything wrong is logged and the next encoding, finally
    /// the JSON, is fetched; null then.
    /// </summary>
    private async Task<(Manifest Manifest, string Sha256, long Length)?> TryFetchCompactAsync(StoreDownloader downloader, CheckInResponse response,
        IReadOnlyList<string> offered, long cap, long? pinned, VersionRecord? record, Directive? directive, TrustAnchor anchor, CancellationToken ct)
    {
        var path = response.ManifestPath!;
        var installed = record?.VersionId ?? 0;
        foreach (var candidate in offered.Take(MaxCompactTried))
        {
            var baseId = StoreLayout.CompactManifestBase(candidate, path, installed);
            if (baseId is null)
            {
                log($"ignoring compact manifest '{candidate}' from the gateway: not an encoding of '{path}' for installed version ID {installed}");
                continue;
            }
            byte[] reference = [];
            if (baseId > 0)
            {
                if (kept.Read(record?.ManifestSha256, out var why) is not { } bytes)
                {
                    log($"compact manifest '{candidate}' not used: {why}; trying the next encoding");
                    continue;
                }
                reference = bytes;
            }
            try
            {
                return await downloader.FetchVerifiedAsync([(candidate, cap), (StoreLayout.SignaturePathFor(path), ManifestSigner.SignatureLength)], files =>
                {
                    var declared = CompactManifest.DeclaredLength(files[0]);
                    if (declared is null || declared > cap || (pinned is { } p && declared != p))
                        throw new ContentRejectedException($"compact manifest '{candidate}' declares {(declared is { } d ? $"{d} bytes" : "no length")}, " +
                            (pinned is { } q ? $"the directive pins {q}" : $"at most {cap} (download.maxManifestBytes) are accepted") + "; not decoded");
                    byte[] decoded;
                    try
                    {
                        decoded = CompactManifest.Decode(reference, files[0], declared.Value);
                    }
                    catch (IntegrityException e)
                    {
                        throw new ContentRejectedException($"compact manifest '{candidate}' does not decode to the {declared} bytes it declares: {e.Message}", e);
                    }
                    var (manifest, sha) = Verify(decoded, files[1], anchor, path, response, record, directive);
                    kept.Keep(decoded, sha);
                    return ((Manifest, string, long)?)(manifest, sha, (long)decoded.Length);
                }, ct, rounds: 1);
            }
            catch (DownloadFailedException e)
            {
                log($"compact manifest '{candidate}' not usable ({e.Message}); trying the next encoding, then '{path}'");
            }
        }
        return null;
    }

    /// <summary>Runs <paramref name="verify"/> with each release key of the trust anchor until one's signature verifies.</summary>
    private static T ByAnyReleaseKey<T>(TrustAnchor anchor, Func<ReleasePublicKey, T> verify)
    {
        IntegrityException? last = null;
        foreach (var key in anchor.ReleaseKeys)
        {
            try { return verify(key); }
            catch (IntegrityException e) { last = e; }
        }
        throw last ?? new IntegrityException("the trust root names no release key");
    }

    /// <summary>
    /// Signature by a release key of the trust root, then product, assigned version, the manifest's SHA-256 as the
    /// directive pins it (and, for a repair, as the sealed record pins the installed one), no freeze. The floors were
    /// checked before the download (<see cref="SessionTrust.CheckFloorsAsync"/>).
    /// </summary>
    private (Manifest, string) Verify(byte[] bytes, byte[] signature, TrustAnchor anchor, string path, CheckInResponse response, VersionRecord? record,
        Directive? directive)
    {
        var where = $"manifest '{path}'";
        var installed = record?.VersionId ?? 0;
        Manifest manifest;
        try
        {
            manifest = ByAnyReleaseKey(anchor, key => ManifestSigner.VerifyAndParse(bytes, signature, key));
        }
        catch (Exception e) when (e is IntegrityException or InvalidInputException)
        {
            throw new ContentRejectedException($"{where}: {e.Message}", e);
        }
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (manifest.Product != config.Product)
            throw new ContentRejectedException($"{where} is for product '{manifest.Product}', this device runs '{config.Product}'");
        // The path names the release the gateway offered; content of another release under that name is a substitution.
        if (StoreLayout.ParseManifestPath(path) is not { } named || named.Product != manifest.Product || named.Version != manifest.Version)
            throw new ContentRejectedException($"{where} holds {manifest.Product} {manifest.Version}, not the release its path names; refused");
        if (manifest.VersionId != response.TargetVersionId)
            throw new ContentRejectedException($"{where} has version ID {manifest.VersionId}, the gateway assigned {response.TargetVersionId}");
        if (directive is not null && directive.ManifestSha256 != sha)
            throw new ContentRejectedException($"{where} has SHA-256 {sha}, but the director-signed directive pins {directive.ManifestSha256} (same version, other content); refused, nothing installed");
        if (response.Action == UpdateAction.Repair && manifest.VersionId != installed)
            throw new ContentRejectedException($"{where} has version ID {manifest.VersionId}, but a repair must use the installed version {installed}");
        if (response.Action == UpdateAction.Repair && record?.ManifestSha256 is { } pinned && pinned != sha)
            throw new ContentRejectedException($"{where} has SHA-256 {sha}, but the installed manifest of version ID {installed} had {pinned}: a repair restores the installed release, not other content under its version ID; refused, nothing installed");
        if (manifest.ExpiresUtc <= time.GetUtcNow())
            throw new ContentRejectedException($"{where} expired at {manifest.ExpiresUtc:O}; a stale release is refused (freeze protection)");
        return (manifest, sha);
    }
}
