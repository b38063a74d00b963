using System.Collections.Concurrent;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Gateway;

/// <summary>What the store says about the release a device reports as installed.</summary>
/// <param name="ExpectedDigest">Inventory digest of the installed version's manifest; null when the store does not list that version (or nothing is installed).</param>
/// <param name="InstalledVersion">Version string of that manifest (with <paramref name="ExpectedDigest"/>).</param>
/// <param name="InstalledManifestPath">Store-relative path of that manifest (with <paramref name="ExpectedDigest"/>).</param>
/// <param name="DifferingPaths">Manifest files whose hash the device reported differently or not at all, in manifest order; empty when the digest matches.</param>
public sealed record InstalledReleaseFacts(string? ExpectedDigest, string? InstalledVersion, string? InstalledManifestPath, IReadOnlyList<string> DifferingPaths)
{
    /// <summary>Nothing known about the installed version.</summary>
    public static readonly InstalledReleaseFacts Unknown = new(null, null, null, []);
}

/// <summary>
/// The gateway's I/O for a check-in: loads the manifest of the device's installed version from the store and
/// compares it with the device's inventory, so the device actor decides on facts, not files. Parsed manifests
/// are cached by path (a published manifest never changes; a re-publish of an unlisted version is not cached
/// because only versions listed in index.json are looked up). A product's index.json is looked at (one stat) at most
/// once per <see cref="IndexRecheckInterval"/> for versions it lists; a version the index in hand does not list (just
/// published) or lists without its manifest (just removed by gc) is looked up in the index on disk at once.
/// </summary>
/// <param name="store">The node's release store.</param>
/// <param name="clock">Clock for <see cref="IndexRecheckInterval"/>; the system clock when null.</param>
public sealed class InstalledReleaseInspector(FileSystemStore store, TimeProvider? clock = null)
{
    /// <summary>
    /// How long check-ins of versions a product's index.json lists use it without looking at the file again: it saves a
    /// stat of the index on every check-in. Listed versions never change (a version is published once), so the only
    /// news the interval can hide is a version removed by gc whose manifest is still cached, answered as before for at
    /// most this long.
    /// </summary>
    public static readonly TimeSpan IndexRecheckInterval = TimeSpan.FromSeconds(1);

    private const int MaxCachedManifests = 256;
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Manifest> _manifests = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CachedIndex> _indexes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, InstalledReleaseFacts> _matched = new(StringComparer.Ordinal);

    // A parsed index.json with the (write time, length) it was read at and when the file was last looked at.
    private sealed record CachedIndex(DateTime WriteTime, long Length, ReleaseIndex Index, long CheckedAt);

    /// <summary>Facts for the check-in; throws <see cref="DeviceRequestRejectedException"/> (404) for a product the store does not know.</summary>
    public InstalledReleaseFacts Inspect(CheckInRequest request)
    {
        var index = LoadIndex(request.Product)
            ?? throw new DeviceRequestRejectedException(404, "unknown_product", $"No release of product '{request.Product}' is published in this store.");
        if (request.InstalledVersionId == 0) return InstalledReleaseFacts.Unknown;
        var entry = index.FindById(request.InstalledVersionId);
        if (entry is null || TryLoadManifest(entry.ManifestPath) is not { } manifest)
        {
            // The index in hand may predate a publish (a device can install a release and report it within the recheck
            // interval) or a gc that removed the version: look at the index on disk before calling the version unknown,
            // and call the store broken only if that index still lists a manifest that is gone.
            index = LoadIndex(request.Product, recheckNow: true)
                ?? throw new DeviceRequestRejectedException(404, "unknown_product", $"No release of product '{request.Product}' is published in this store.");
            entry = index.FindById(request.InstalledVersionId);
            if (entry is null) return InstalledReleaseFacts.Unknown;
            manifest = TryLoadManifest(entry.ManifestPath)
                ?? throw new InvalidOperationException($"Store index lists {entry.ManifestPath} but the file is missing; run orch store verify.");
        }
        if (string.Equals(manifest.InventoryDigest, request.InventoryDigest, StringComparison.Ordinal))
            return Matched(manifest, entry);
        return Differing(request, manifest, entry);
    }

    // The facts of a device whose files are the release's, the same for every such device of that version: built once.
    private InstalledReleaseFacts Matched(Manifest manifest, ReleaseIndexEntry entry)
    {
        if (_matched.TryGetValue(entry.ManifestPath, out var facts)
            && ReferenceEquals(facts.ExpectedDigest, manifest.InventoryDigest) && string.Equals(facts.InstalledVersion, entry.Version, StringComparison.Ordinal))
            return facts;
        facts = new InstalledReleaseFacts(manifest.InventoryDigest, entry.Version, entry.ManifestPath, []);
        if (_matched.Count >= MaxCachedManifests) _matched.Clear();
        _matched[entry.ManifestPath] = facts;
        return facts;
    }

    private static InstalledReleaseFacts Differing(CheckInRequest request, Manifest manifest, ReleaseIndexEntry entry)
    {
        // Without a per-file list every file is suspect; chunk-level dedup keeps the download to what is missing.
        if (request.Files is null)
            return new InstalledReleaseFacts(manifest.InventoryDigest, entry.Version, entry.ManifestPath, manifest.Files.Select(f => f.Path).ToList());
        var reported = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in request.Files) reported[f.Path] = f.Sha256;
        var differing = manifest.Files
            .Where(f => !reported.TryGetValue(f.Path, out var sha) || !string.Equals(sha, f.Sha256, StringComparison.Ordinal))
            .Select(f => f.Path)
            .ToList();
        // Every manifest file is intact, so the digest differs only through files the release does not own (a
        // repair could not change them): report no expectation rather than a repair with nothing to restore.
        if (differing.Count == 0) return InstalledReleaseFacts.Unknown;
        return new InstalledReleaseFacts(manifest.InventoryDigest, entry.Version, entry.ManifestPath, differing);
    }

    /// <summary>
    /// The delta manifest path from <paramref name="installedVersion"/> to <paramref name="targetVersion"/> when it and
    /// its signature are in the store (two stats); null otherwise. The agent verifies it; the gateway only offers it.
    /// </summary>
    public string? DeltaManifestPathFor(string product, string? installedVersion, string? targetVersion)
    {
        if (installedVersion is null || targetVersion is null || installedVersion == targetVersion
            || !StoreNames.IsValidProduct(product) || !StoreNames.IsValidVersion(installedVersion) || !StoreNames.IsValidVersion(targetVersion))
            return null;
        var path = StoreLayout.DeltaManifestPath(product, installedVersion, targetVersion);
        return store.FileExists(path) && store.FileExists(StoreLayout.SignaturePathFor(path)) ? path : null;
    }

    /// <summary>
    /// The compact encodings of the manifest at <paramref name="manifestPath"/> a device holding version ID
    /// <paramref name="installedVersionId"/> can fetch, best first (<see cref="CompactManifest.Offered"/>: one or two file
    /// checks); empty when the store has none. The agent verifies what it decodes; the gateway only offers.
    /// </summary>
    public IReadOnlyList<string> CompactManifestsFor(string? manifestPath, long installedVersionId) =>
        manifestPath is null ? [] : CompactManifest.Offered(store, manifestPath, installedVersionId);

    // index.json is replaced by rename on every publish, so (write time, length) identifies a version of it; one stat
    // per product and IndexRecheckInterval instead of a read and parse. Only products whose index exists are cached, so a
    // product published for the first time is seen at once.
    private ReleaseIndex? LoadIndex(string product, bool recheckNow = false)
    {
        var now = _clock.GetTimestamp();
        _indexes.TryGetValue(product, out var cached);
        if (cached is not null && !recheckNow && _clock.GetElapsedTime(cached.CheckedAt, now) < IndexRecheckInterval) return cached.Index;
        var info = new FileInfo(store.FullPath(StoreLayout.IndexPath(product)));
        if (!info.Exists)
        {
            _indexes.TryRemove(product, out _);
            return null;
        }
        if (cached is not null && cached.WriteTime == info.LastWriteTimeUtc && cached.Length == info.Length)
        {
            _indexes[product] = cached with { CheckedAt = now };
            return cached.Index;
        }
        var bytes = store.ReadFile(StoreLayout.IndexPath(product));
        if (bytes is null) return null;
        ReleaseIndex index;
        try { index = ReleaseIndex.Parse(bytes); }
        catch (InvalidInputException ex) { throw new InvalidOperationException($"Store index of '{product}' is unreadable: {ex.Message}", ex); }
        if (_indexes.Count >= MaxCachedManifests) _indexes.Clear();
        _indexes[product] = new CachedIndex(info.LastWriteTimeUtc, info.Length, index, now);
        return index;
    }

    // Null when the manifest file is not in the store.
    private Manifest? TryLoadManifest(string manifestPath)
    {
        if (_manifests.TryGetValue(manifestPath, out var cached)) return cached;
        var bytes = store.ReadFile(manifestPath);
        if (bytes is null) return null;
        var manifest = ManifestSerializer.Parse(bytes);
        if (_manifests.Count >= MaxCachedManifests) _manifests.Clear();
        _manifests[manifestPath] = manifest;
        return manifest;
    }
}
