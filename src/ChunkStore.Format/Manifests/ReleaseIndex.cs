using System.Text.Json;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>One published version as listed in <c>manifests/&lt;product&gt;/index.json</c>.</summary>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Monotonic version ID.</param>
/// <param name="ManifestPath">Store-relative path of the manifest.</param>
/// <param name="CreatedUtc">Publish time.</param>
public sealed record ReleaseIndexEntry(string Version, long VersionId, string ManifestPath, DateTimeOffset CreatedUtc);

/// <summary>
/// The versions of one product, ascending by version ID (docs/store-format.md, "index.json"). Rewriting it is the
/// publish commit point; it lets a server map a version ID to a manifest without scanning.
/// </summary>
/// <param name="Product">Product name.</param>
/// <param name="Versions">Published versions, ascending by version ID.</param>
public sealed record ReleaseIndex(string Product, IReadOnlyList<ReleaseIndexEntry> Versions)
{
    /// <summary>Schema of the index file.</summary>
    public const int Schema = 1;

    /// <summary>The newest version, or null for an empty index.</summary>
    public ReleaseIndexEntry? Latest => Versions.Count == 0 ? null : Versions[^1];

    /// <summary>Finds a version by ID.</summary>
    public ReleaseIndexEntry? FindById(long versionId)
    {
        // A loop, not a predicate: the gateway looks up the device's installed version on every check-in.
        for (var i = 0; i < Versions.Count; i++)
            if (Versions[i].VersionId == versionId) return Versions[i];
        return null;
    }

    /// <summary>Finds a version by version string.</summary>
    public ReleaseIndexEntry? FindByVersion(string version) => Versions.FirstOrDefault(v => v.Version == version);

    /// <summary>A copy with <paramref name="entry"/> appended (caller checks monotonicity).</summary>
    public ReleaseIndex With(ReleaseIndexEntry entry) => this with { Versions = [.. Versions, entry] };

    /// <summary>Canonical bytes.</summary>
    public byte[] ToBytes()
    {
        var w = new CanonicalJsonWriter();
        w.StartObject().Property("schema", Schema).Property("product", Product).Name("versions").StartArray();
        foreach (var v in Versions)
            w.StartObject()
                .Property("version", v.Version)
                .Property("versionId", v.VersionId)
                .Property("manifest", v.ManifestPath)
                .Property("createdUtc", ManifestSerializer.FormatTime(v.CreatedUtc))
                .EndObject();
        w.EndArray().EndObject();
        return w.ToArray();
    }

    /// <summary>Parses and validates an index file; throws <see cref="InvalidInputException"/>.</summary>
    public static ReleaseIndex Parse(ReadOnlySpan<byte> bytes)
    {
        try
        {
            using var doc = JsonDocument.Parse(bytes.ToArray());
            var root = doc.RootElement;
            var schema = ManifestSerializer.Required(root, "schema").GetInt32();
            if (schema != Schema) throw new FormatException($"schema {schema} is not supported");
            var product = ManifestSerializer.RequiredString(root, "product");
            StoreNames.RequireProduct(product);
            var versions = ManifestSerializer.Required(root, "versions").EnumerateArray().Select(v => new ReleaseIndexEntry(
                ManifestSerializer.RequiredString(v, "version"),
                ManifestSerializer.Required(v, "versionId").GetInt64(),
                ManifestSerializer.RequiredString(v, "manifest"),
                ManifestSerializer.ParseTime(ManifestSerializer.RequiredString(v, "createdUtc"), "createdUtc"))).ToList();
            long last = 0;
            foreach (var v in versions)
            {
                StoreNames.RequireVersion(v.Version);
                if (v.VersionId <= last) throw new FormatException($"version IDs must increase (found {v.VersionId} after {last})");
                if (v.ManifestPath != StoreLayout.ManifestPath(product, v.Version))
                    throw new FormatException($"manifest path '{v.ManifestPath}' does not match version '{v.Version}'");
                last = v.VersionId;
            }
            return new ReleaseIndex(product, versions);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidInputException($"Release index is invalid: {ex.Message}", ex);
        }
    }
}

/// <summary>A named pointer to one version of a product (<c>channels/&lt;product&gt;/&lt;channel&gt;.json</c>).</summary>
/// <param name="Product">Product name.</param>
/// <param name="Channel">Channel name, e.g. <c>stable</c>.</param>
/// <param name="Version">Version string it points to.</param>
/// <param name="VersionId">Version ID it points to.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
public sealed record ChannelPointer(string Product, string Channel, string Version, long VersionId, string ManifestPath)
{
    /// <summary>Schema of the channel file.</summary>
    public const int Schema = 1;

    /// <summary>Canonical bytes.</summary>
    public byte[] ToBytes() => new CanonicalJsonWriter().StartObject()
        .Property("schema", Schema)
        .Property("product", Product)
        .Property("channel", Channel)
        .Property("version", Version)
        .Property("versionId", VersionId)
        .Property("manifest", ManifestPath)
        .EndObject().ToArray();

    /// <summary>Parses and validates a channel file; throws <see cref="InvalidInputException"/>.</summary>
    public static ChannelPointer Parse(ReadOnlySpan<byte> bytes)
    {
        try
        {
            using var doc = JsonDocument.Parse(bytes.ToArray());
            var root = doc.RootElement;
            var schema = ManifestSerializer.Required(root, "schema").GetInt32();
            if (schema != Schema) throw new FormatException($"schema {schema} is not supported");
            var pointer = new ChannelPointer(
                ManifestSerializer.RequiredString(root, "product"),
                ManifestSerializer.RequiredString(root, "channel"),
                ManifestSerializer.RequiredString(root, "version"),
                ManifestSerializer.Required(root, "versionId").GetInt64(),
                ManifestSerializer.RequiredString(root, "manifest"));
            StoreNames.RequireProduct(pointer.Product);
            StoreNames.RequireChannel(pointer.Channel);
            StoreNames.RequireVersion(pointer.Version);
            StoreNames.RequireVersionId(pointer.VersionId);
            if (pointer.ManifestPath != StoreLayout.ManifestPath(pointer.Product, pointer.Version))
                throw new FormatException($"manifest path '{pointer.ManifestPath}' does not match version '{pointer.Version}'");
            return pointer;
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidInputException($"Channel file is invalid: {ex.Message}", ex);
        }
    }
}
