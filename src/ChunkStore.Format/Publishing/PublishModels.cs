using Orchestrator.ChunkStore.Chunking;

namespace Orchestrator.ChunkStore.Publishing;

/// <summary>What to publish.</summary>
/// <param name="Product">Product name.</param>
/// <param name="Version">Version string (unique per product).</param>
/// <param name="TreePath">Folder holding the release's files.</param>
/// <param name="VersionId">Explicit version ID; null means the product's latest + 1 (1 for a new product).</param>
/// <param name="Channel">Channel to point at the new version after the commit; null leaves channels alone.</param>
/// <param name="Lifetime">How long the manifest stays valid; null means 365 days.</param>
/// <param name="Chunking">Chunker bounds; null means <see cref="ChunkingOptions.Default"/>.</param>
/// <param name="Packs">Store the release's new chunks once, inside pack objects, with a signed pack index
/// (docs/store-format.md, "Packs"): devices fetch them in a few Range requests instead of one request per chunk, and the
/// store holds no chunk object for them. Chunks the store already holds (as objects or in packs) are not stored again.
/// Off unless asked for: without it every new chunk is its own object.</param>
public sealed record PublishRequest(
    string Product,
    string Version,
    string TreePath,
    long? VersionId = null,
    string? Channel = null,
    TimeSpan? Lifetime = null,
    ChunkingOptions? Chunking = null,
    bool Packs = false)
{
    /// <summary>
    /// Files of 1 .. this many bytes minus one are packed, in manifest order, into the release's small-file stream
    /// (docs/store-format.md, "Small-file stream"; manifest schema 2) when the tree holds at least two of them;
    /// 0 (the default) chunks every file on its own and writes schema 1, which every agent reads.
    /// </summary>
    public int SmallFilesBelow { get; init; }
}

/// <summary>Progress of a publish, reported after every batch of chunks.</summary>
/// <param name="BytesDone">Plaintext bytes chunked and stored so far.</param>
/// <param name="BytesTotal">Plaintext bytes of the whole tree.</param>
/// <param name="ChunksDone">Chunks processed so far.</param>
/// <param name="ChunksNew">Chunks written so far (absent before).</param>
/// <param name="CurrentFile">Relative path being read.</param>
public sealed record PublishProgress(long BytesDone, long BytesTotal, long ChunksDone, long ChunksNew, string? CurrentFile);

/// <summary>Outcome of a successful publish.</summary>
/// <param name="Product">Product name.</param>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID assigned.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
/// <param name="Files">Regular files published.</param>
/// <param name="Symlinks">Symlinks published.</param>
/// <param name="BytesTotal">Plaintext bytes of all files.</param>
/// <param name="ChunksTotal">Chunk references in the manifest (with repeats).</param>
/// <param name="ChunksDistinct">Distinct chunks the release uses.</param>
/// <param name="ChunksNew">Chunks that were absent and got written.</param>
/// <param name="BytesNew">Stored bytes written for those chunks.</param>
/// <param name="InventoryDigest">The manifest's inventory digest.</param>
/// <param name="Elapsed">Wall time of the publish.</param>
public sealed record PublishResult(
    string Product,
    string Version,
    long VersionId,
    string ManifestPath,
    int Files,
    int Symlinks,
    long BytesTotal,
    long ChunksTotal,
    long ChunksDistinct,
    long ChunksNew,
    long BytesNew,
    string InventoryDigest,
    TimeSpan Elapsed);
