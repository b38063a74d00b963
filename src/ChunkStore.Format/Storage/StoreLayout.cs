using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Storage;

/// <summary>
/// Every path of the store layout (docs/store-format.md), relative to the store root with '/' separators, so
/// the same strings serve as file paths under the root and as URL paths on the gateway or any mirror.
/// </summary>
public static class StoreLayout
{
    /// <summary>Folder of chunk objects.</summary>
    public const string ChunksDirectory = "chunks";

    /// <summary>Folder of manifests, signatures and release indexes.</summary>
    public const string ManifestsDirectory = "manifests";

    /// <summary>Folder of channel pointers.</summary>
    public const string ChannelsDirectory = "channels";

    /// <summary>Folder of signed delta manifests (<c>deltas/&lt;product&gt;/&lt;from&gt;/&lt;to&gt;.json</c>).</summary>
    public const string DeltasDirectory = "deltas";

    /// <summary>Folder of pack objects (runs of chunk objects fetched with HTTP Range requests).</summary>
    public const string PacksDirectory = "packs";

    /// <summary>File name suffix of a release's signed pack index, next to its manifest.</summary>
    public const string PackIndexSuffix = ".packs";

    /// <summary>File name suffix of a release's signed chunk patch index, next to its manifest.</summary>
    public const string ChunkPatchIndexSuffix = ".chunkpatches";

    /// <summary>Writers' advisory lock file at the root.</summary>
    public const string LockFile = ".orch-store.lock";

    /// <summary>Publisher's plaintext-tag to chunk-id cache at the root (not content; safe to delete).</summary>
    public const string PublishCacheFile = ".orch-publish-cache";

    /// <summary>File name of a product's release index.</summary>
    public const string IndexFileName = "index.json";

    /// <summary><c>chunks/ab/&lt;id&gt;</c>.</summary>
    public static string ChunkPath(ChunkId id) => $"{ChunksDirectory}/{id.Hex[..2]}/{id.Hex}";

    /// <summary><c>packs/ab/&lt;id&gt;</c>: a pack object, named like a chunk by the SHA-256 of its bytes.</summary>
    public static string PackPath(ChunkId id) => $"{PacksDirectory}/{id.Hex[..2]}/{id.Hex}";

    /// <summary><c>manifests/&lt;product&gt;/&lt;version&gt;.packs</c>: the signed pack index of a release.</summary>
    public static string PackIndexPath(string product, string version)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(version);
        return $"{ManifestsDirectory}/{product}/{version}{PackIndexSuffix}";
    }

    /// <summary>The pack index path next to a manifest path (<c>….json</c> → <c>….packs</c>).</summary>
    public static string PackIndexPathFor(string manifestPath) =>
        ParseManifestPath(manifestPath) is { } named ? PackIndexPath(named.Product, named.Version)
            : throw new ArgumentException($"'{manifestPath}' is not a manifest path (manifests/<product>/<version>.json).", nameof(manifestPath));

    /// <summary>The chunk patch index path next to a manifest path (<c>….json</c> → <c>….chunkpatches</c>).</summary>
    public static string ChunkPatchIndexPathFor(string manifestPath) =>
        ParseManifestPath(manifestPath) is { } named ? $"{ManifestsDirectory}/{named.Product}/{named.Version}{ChunkPatchIndexSuffix}"
            : throw new ArgumentException($"'{manifestPath}' is not a manifest path (manifests/<product>/<version>.json).", nameof(manifestPath));

    /// <summary>File name suffix of a release's whole compact manifest (one zstd frame of the canonical JSON).</summary>
    public const string CompactManifestSuffix = ".json.zst";

    /// <summary>
    /// <c>manifests/&lt;product&gt;/&lt;version&gt;.json.zst</c>: the canonical manifest at <paramref name="manifestPath"/> as one
    /// zstd frame (docs/store-format.md "Compact manifests").
    /// </summary>
    public static string CompactManifestPath(string manifestPath) =>
        ParseManifestPath(manifestPath) is { } named ? $"{ManifestsDirectory}/{named.Product}/{named.Version}{CompactManifestSuffix}"
            : throw new ArgumentException($"'{manifestPath}' is not a manifest path (manifests/<product>/<version>.json).", nameof(manifestPath));

    /// <summary>
    /// <c>manifests/&lt;product&gt;/&lt;version&gt;.from-&lt;baseVersionId&gt;.zst</c>: the canonical manifest at
    /// <paramref name="manifestPath"/> coded against the canonical manifest of version ID <paramref name="baseVersionId"/>.
    /// </summary>
    public static string ManifestPatchPath(string manifestPath, long baseVersionId)
    {
        if (baseVersionId <= 0) throw new ArgumentOutOfRangeException(nameof(baseVersionId), $"version ID {baseVersionId} is not positive.");
        return ParseManifestPath(manifestPath) is { } named ? $"{ManifestsDirectory}/{named.Product}/{named.Version}.from-{baseVersionId}.zst"
            : throw new ArgumentException($"'{manifestPath}' is not a manifest path (manifests/<product>/<version>.json).", nameof(manifestPath));
    }

    /// <summary>
    /// What a compact manifest path offered for <paramref name="manifestPath"/> is, for a device holding the manifest of
    /// <paramref name="installedVersionId"/>: 0 for the whole frame, the base version ID for a patch against exactly the
    /// installed manifest, null for anything else (another release's file, another base, not a store path).
    /// </summary>
    public static long? CompactManifestBase(string? path, string manifestPath, long installedVersionId)
    {
        if (path is null || ParseManifestPath(manifestPath) is null) return null;
        if (path == CompactManifestPath(manifestPath)) return 0;
        if (installedVersionId > 0 && path == ManifestPatchPath(manifestPath, installedVersionId)) return installedVersionId;
        return null;
    }

    /// <summary><c>manifests/&lt;product&gt;/&lt;version&gt;.json</c>.</summary>
    public static string ManifestPath(string product, string version)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(version);
        return $"{ManifestsDirectory}/{product}/{version}.json";
    }

    /// <summary><c>manifests/&lt;product&gt;/&lt;version&gt;.json.sig</c>.</summary>
    public static string SignaturePath(string product, string version) => ManifestPath(product, version) + ".sig";

    /// <summary>Signature path for a manifest path.</summary>
    public static string SignaturePathFor(string manifestPath) => manifestPath + ".sig";

    /// <summary><c>manifests/&lt;product&gt;/index.json</c>.</summary>
    public static string IndexPath(string product)
    {
        StoreNames.RequireProduct(product);
        return $"{ManifestsDirectory}/{product}/{IndexFileName}";
    }

    /// <summary><c>channels/&lt;product&gt;/&lt;channel&gt;.json</c>.</summary>
    public static string ChannelPath(string product, string channel)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireChannel(channel);
        return $"{ChannelsDirectory}/{product}/{channel}.json";
    }

    /// <summary><c>deltas/&lt;product&gt;/&lt;fromVersion&gt;/&lt;toVersion&gt;.json</c>: the delta manifest between two releases.</summary>
    public static string DeltaManifestPath(string product, string fromVersion, string toVersion)
    {
        StoreNames.RequireProduct(product);
        StoreNames.RequireVersion(fromVersion);
        StoreNames.RequireVersion(toVersion);
        return $"{DeltasDirectory}/{product}/{fromVersion}/{toVersion}.json";
    }

    /// <summary>True when <paramref name="path"/> has the form of a delta manifest path (no file access).</summary>
    public static bool IsDeltaManifestPath(string? path)
    {
        if (path is null) return false;
        var parts = path.Split('/');
        return parts.Length == 4 && parts[0] == DeltasDirectory && StoreNames.IsValidProduct(parts[1]) && StoreNames.IsValidVersion(parts[2])
            && parts[3].EndsWith(".json", StringComparison.Ordinal) && StoreNames.IsValidVersion(parts[3][..^5]);
    }

    /// <summary>
    /// The product and version a manifest path names, when <paramref name="path"/> is exactly
    /// <c>manifests/&lt;product&gt;/&lt;version&gt;.json</c> in the store's grammar; null otherwise. The grammar has no
    /// percent, query or fragment characters, so a path that only decodes to a manifest path (<c>%2e%2e</c>) is refused
    /// instead of reaching a URL with the device's credential.
    /// </summary>
    public static (string Product, string Version)? ParseManifestPath(string? path)
    {
        if (path is null) return null;
        var parts = path.Split('/');
        if (parts.Length != 3 || parts[0] != ManifestsDirectory || !StoreNames.IsValidProduct(parts[1])
            || !parts[2].EndsWith(".json", StringComparison.Ordinal) || !StoreNames.IsValidVersion(parts[2][..^5]))
            return null;
        return (parts[1], parts[2][..^5]);
    }

    /// <summary>Joins a base URL (e.g. a mirror) and a store-relative path.</summary>
    public static Uri ToUri(Uri baseUri, string relativePath)
    {
        ArgumentNullException.ThrowIfNull(baseUri);
        var text = baseUri.AbsoluteUri;
        return new Uri(text.EndsWith('/') ? text + relativePath : text + "/" + relativePath);
    }
}
