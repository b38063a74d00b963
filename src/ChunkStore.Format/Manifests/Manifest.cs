using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>
/// A signed description of one release of one product (docs/store-format.md, "Manifest"). Build it, then
/// <see cref="ManifestSerializer.Serialize"/> validates it and produces the canonical bytes that get signed.
/// </summary>
/// <param name="Product">Product name.</param>
/// <param name="Version">Human version string.</param>
/// <param name="VersionId">Monotonic version ID (>= 1), what devices report and the server compares.</param>
/// <param name="CreatedUtc">Publish time, whole seconds, UTC.</param>
/// <param name="ExpiresUtc">After this time agents refuse the manifest (guards against replaying stale releases).</param>
/// <param name="Chunking">Chunker bounds used, so agents can chunk local files identically.</param>
/// <param name="InventoryDigest">See <see cref="Manifests.InventoryDigest"/>; must match <paramref name="Files"/>.</param>
/// <param name="Files">Regular files, sorted by ordinal path.</param>
/// <param name="Symlinks">Symbolic links, sorted by ordinal path.</param>
public sealed record Manifest(
    string Product,
    string Version,
    long VersionId,
    DateTimeOffset CreatedUtc,
    DateTimeOffset ExpiresUtc,
    ChunkingOptions Chunking,
    string InventoryDigest,
    IReadOnlyList<ManifestFile> Files,
    IReadOnlyList<ManifestSymlink> Symlinks)
{
    /// <summary>The manifest schema this code writes and reads.</summary>
    public const int Schema = 1;

    /// <summary>Sum of all file sizes.</summary>
    public long TotalBytes => Files.Sum(f => f.Size);

    /// <summary>Distinct chunk ids referenced by the files.</summary>
    public IReadOnlySet<ChunkId> DistinctChunks() => Files.SelectMany(f => f.Chunks).Select(c => c.Id).ToHashSet();
}

/// <summary>One regular file of a release.</summary>
/// <param name="Path">Relative path with '/' separators.</param>
/// <param name="Mode">Unix permission bits (0 .. 0o777).</param>
/// <param name="Size">Length in bytes (= sum of chunk lengths).</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the whole content.</param>
/// <param name="Chunks">The content as an ordered list of chunks.</param>
public sealed record ManifestFile(string Path, int Mode, long Size, string Sha256, IReadOnlyList<ChunkRef> Chunks);

/// <summary>One chunk of a file: its id, its plaintext length and its keyed plaintext tag.</summary>
/// <param name="Id">Chunk object id (SHA-256 of the stored bytes; depends on the compressor build).</param>
/// <param name="Length">Plaintext bytes it decodes to.</param>
/// <param name="Tag">
/// <see cref="ChunkCodec.ManifestTag"/> of the plaintext: 32 lower-case hex characters. It identifies the
/// plaintext independently of the compressor, so agents recognise chunks they already hold without encoding.
/// </param>
public sealed record ChunkRef(ChunkId Id, int Length, string Tag);

/// <summary>A symbolic link of a release, recorded as an entry and never followed.</summary>
/// <param name="Path">Relative path of the link.</param>
/// <param name="Target">Relative link target; stays inside the tree.</param>
public sealed record ManifestSymlink(string Path, string Target);
