using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Node.Releases;

/// <summary>
/// Takes a release that was chunked, encrypted and signed elsewhere into this node's store. Nothing is trusted for
/// being sent by an operator: the manifest must carry a signature of a release key of the node's root chain, every
/// chunk object must hash to its id, and the release becomes visible (the index names it, the store's commit point)
/// only when every object it refers to is present in the chunk backend.
/// </summary>
public sealed class ReleaseIntake(FileSystemStore store, IChunkBlobStore chunks)
{
    /// <summary>Verifies the request and lists the chunk objects the backend lacks; changes nothing. The objects themselves
    /// arrive through the chunk store's own upload route, which checks each against its id.</summary>
    /// <exception cref="InvalidInputException">Malformed input, or a manifest for another product or version.</exception>
    /// <exception cref="IntegrityException">A signature or root document that does not verify.</exception>
    /// <exception cref="ReleaseConflictException">The version exists with other content, or its version ID is not the newest.</exception>
    public async Task<ReleaseUploadPlan> PlanAsync(string product, string version, ReleaseUploadRequest request, CancellationToken ct)
    {
        var release = Verify(product, version, request);
        var missing = await MissingAsync(release.Manifest, ct).ConfigureAwait(false);
        return new ReleaseUploadPlan(product, version, release.Manifest.VersionId, release.Manifest.DistinctChunks().Count,
            [.. missing.Select(id => id.Hex)], release.AlreadyPublished);
    }

    /// <summary>
    /// Verifies again, checks that every chunk object is present, then writes the new root documents, the manifest, its
    /// signature and (the commit point) the product index, under the store's writer lock.
    /// </summary>
    /// <exception cref="ReleaseConflictException">Objects still missing, or the index changed in a conflicting way.</exception>
    public async Task<ReleaseCommitted> CommitAsync(string product, string version, ReleaseUploadRequest request, CancellationToken ct)
    {
        var release = Verify(product, version, request);
        var manifestPath = StoreLayout.ManifestPath(product, version);
        var count = release.Manifest.DistinctChunks().Count;
        if (release.AlreadyPublished)
            return new ReleaseCommitted(product, version, release.Manifest.VersionId, manifestPath, count, [], AlreadyPublished: true);
        var missing = await MissingAsync(release.Manifest, ct).ConfigureAwait(false);
        if (missing.Count > 0)
            throw new ReleaseConflictException("chunks_missing",
                $"{missing.Count} of the {count} chunk objects of {product} {version} are not on the node yet (first: {missing[0].Hex}); upload them (orch release publish --server uploads what is missing) and commit again.");
        using (store.AcquireWriterLock())
        {
            // Checked again under the lock: another publisher may have committed since the first check.
            release = Verify(product, version, request);
            if (release.AlreadyPublished)
                return new ReleaseCommitted(product, version, release.Manifest.VersionId, manifestPath, count, [], AlreadyPublished: true);
            foreach (var (number, bytes) in release.NewRoots)
                store.WriteFile(TrustFiles.StorePath(number), bytes);
            store.WriteFile(manifestPath, release.ManifestBytes);
            store.WriteFile(StoreLayout.SignaturePathFor(manifestPath), release.Signature);
            // The compact manifests a publish writes (docs/store-format.md "Compact manifests"), before the commit like it.
            CompactManifest.WriteForNewRelease(store, release.Index, manifestPath, release.ManifestBytes);
            store.WriteFile(StoreLayout.IndexPath(product),
                release.Index.With(new ReleaseIndexEntry(version, release.Manifest.VersionId, manifestPath, release.Manifest.CreatedUtc)).ToBytes());
        }
        return new ReleaseCommitted(product, version, release.Manifest.VersionId, manifestPath, count,
            [.. release.NewRoots.Select(r => r.Version)], AlreadyPublished: false);
    }

    private async Task<List<ChunkId>> MissingAsync(Manifest manifest, CancellationToken ct)
    {
        var missing = new List<ChunkId>();
        foreach (var id in manifest.DistinctChunks().OrderBy(i => i.Hex, StringComparer.Ordinal))
            if (!await chunks.ExistsAsync(id.Hex, ct).ConfigureAwait(false)) missing.Add(id);
        return missing;
    }

    private VerifiedRelease Verify(string product, string version, ReleaseUploadRequest request)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(version);
        var manifestBytes = Base64(request.Manifest, "manifest");
        var signature = Base64(request.Signature, "signature");
        var (anchor, newRoots) = TrustChain(request.Roots ?? []);
        var manifest = VerifySignature(manifestBytes, signature, anchor);
        if (manifest.Product != product || manifest.Version != version)
            throw new InvalidInputException($"The manifest is {manifest.Product} {manifest.Version}, but it was sent as {product} {version}; send it under its own product and version.");

        var indexBytes = store.ReadFile(StoreLayout.IndexPath(product));
        var index = indexBytes is null ? new ReleaseIndex(product, []) : ReleaseIndex.Parse(indexBytes);
        if (index.FindByVersion(version) is { } existing)
        {
            var published = store.ReadFile(existing.ManifestPath);
            if (published is not null && published.AsSpan().SequenceEqual(manifestBytes))
                return new VerifiedRelease(manifest, manifestBytes, signature, index, newRoots, AlreadyPublished: true);
            throw new ReleaseConflictException("version_exists",
                $"{product} {version} is already published on this node (version ID {existing.VersionId}) with other content; publish under a new version string.");
        }
        if (index.Latest is { } latest && manifest.VersionId <= latest.VersionId)
            throw new ReleaseConflictException("version_id_not_newer",
                $"Version ID {manifest.VersionId} of {product} {version} is not greater than the node's latest, {latest.VersionId} ({latest.Version}); publish again with --version-id {latest.VersionId + 1} or higher (orch picks it when the switch is left out).");
        return new VerifiedRelease(manifest, manifestBytes, signature, index, newRoots, AlreadyPublished: false);
    }

    /// <summary>The node's root chain extended by the sent documents that continue it; refuses any that contradict it.</summary>
    private (TrustAnchor Anchor, List<(long Version, byte[] Bytes)> NewRoots) TrustChain(IReadOnlyList<string> sent)
    {
        var offered = new SortedDictionary<long, byte[]>();
        foreach (var text in sent)
        {
            var bytes = Base64(text, "root document");
            var doc = RootDocument.Parse(SignedEnvelope.Parse(bytes, RootDocument.MaxBytes, "sent root document").PayloadBytes("sent root document"), "sent root document");
            if (!offered.TryAdd(doc.Version, bytes) && !offered[doc.Version].AsSpan().SequenceEqual(bytes))
                throw new InvalidInputException($"Two different root documents of version {doc.Version} were sent; send the keys folder's root-<N>.json files once each.");
        }
        TrustAnchor? anchor = null;
        var added = new List<(long, byte[])>();
        for (long n = 1; ; n++)
        {
            var held = store.ReadFile(TrustFiles.StorePath(n));
            var bytes = held ?? offered.GetValueOrDefault(n);
            if (bytes is null) break;
            if (held is not null && offered.TryGetValue(n, out var sentBytes) && !sentBytes.AsSpan().SequenceEqual(held))
                throw new IntegrityException($"Root document version {n} sent differs from the one this node holds: the keys folder belongs to another trust root; publish with the keys of this node's root.");
            anchor = anchor is null ? TrustAnchor.Load(bytes, $"root version {n}") : anchor.Next(bytes);
            if (held is null) added.Add((n, bytes));
        }
        if (anchor is null)
            throw new InvalidInputException("This node's store has no root document and none was sent; publish with the keys folder of 'orch keys init' (orch sends its root documents).");
        if (offered.Keys.Any(v => v > anchor.Root!.Version))
            throw new IntegrityException($"Root document version {offered.Keys.First(v => v > anchor.Root!.Version)} does not follow the node's chain, which ends at version {anchor.Root!.Version}; send every version in between.");
        return (anchor, added);
    }

    private static Manifest VerifySignature(byte[] manifestBytes, byte[] signature, TrustAnchor anchor)
    {
        foreach (var key in anchor.ReleaseKeys)
            if (ManifestSigner.Verify(manifestBytes, signature, key))
                return ManifestSerializer.Parse(manifestBytes);
        throw new IntegrityException($"The manifest's signature does not verify with any release key of root version {anchor.Root?.Version}: sign it with this node's release key (orch keys init / rotate release).");
    }

    private static byte[] Base64(string? text, string what)
    {
        if (string.IsNullOrEmpty(text)) throw new InvalidInputException($"The {what} is missing; send it base64-encoded.");
        try { return Convert.FromBase64String(text); }
        catch (FormatException) { throw new InvalidInputException($"The {what} is not valid base64."); }
    }

    private sealed record VerifiedRelease(Manifest Manifest, byte[] ManifestBytes, byte[] Signature, ReleaseIndex Index,
        List<(long Version, byte[] Bytes)> NewRoots, bool AlreadyPublished);
}

/// <summary>A release that cannot be taken in the node's current state (HTTP 409); <see cref="Code"/> names the case.</summary>
public sealed class ReleaseConflictException(string code, string message) : Exception(message)
{
    /// <summary>Machine-readable reason, e.g. <c>chunks_missing</c>.</summary>
    public string Code { get; } = code;
}
