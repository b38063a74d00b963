using Orchestrator.ChunkStore.Codec;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// A signed list of per-file patches from one published version of a product to a later one
/// (docs/store-format.md, "Delta manifest"). Only files whose content changed are listed; a device applies a
/// listed patch only to a local source file whose SHA-256 equals <see cref="DeltaFile.SourceSha256"/>, and
/// installs the result only if it hashes to the target manifest's <c>sha256</c>.
/// </summary>
/// <param name="Product">Product name.</param>
/// <param name="From">The source release.</param>
/// <param name="To">The target release.</param>
/// <param name="CreatedUtc">Build time, whole seconds, UTC.</param>
/// <param name="Level">zstd level the patches were made with (informational).</param>
/// <param name="Files">Changed files, sorted by ordinal target path.</param>
public sealed record DeltaManifest(
    string Product,
    DeltaEndpoint From,
    DeltaEndpoint To,
    DateTimeOffset CreatedUtc,
    int Level,
    IReadOnlyList<DeltaFile> Files)
{
    /// <summary>The delta manifest schema this code writes and reads.</summary>
    public const int Schema = 1;

    /// <summary>Distinct stored objects the patches use.</summary>
    public IReadOnlySet<ChunkId> DistinctObjects() => Files.SelectMany(f => f.Parts).Select(p => p.Id).ToHashSet();

    /// <summary>Stored bytes of every patch object (what a device downloads for the patched files).</summary>
    public long PatchBytes => Files.SelectMany(f => f.Parts).Sum(p => (long)p.Stored);
}

/// <summary>One end of a delta: a published release.</summary>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID.</param>
/// <param name="ManifestSha256">SHA-256 (hex) of that release's exact manifest bytes.</param>
/// <param name="InventoryDigest">That manifest's inventory digest (a device whose tree has it holds every source file).</param>
public sealed record DeltaEndpoint(string Version, long VersionId, string ManifestSha256, string InventoryDigest);

/// <summary>How a changed file is obtained.</summary>
public enum DeltaMethod
{
    /// <summary>Apply the patch in <see cref="DeltaFile.Parts"/> to the source file.</summary>
    Patch,

    /// <summary>The patch would not be smaller than the file's missing chunks: fetch chunks as without a delta.</summary>
    Chunks,
}

/// <summary>One changed file.</summary>
/// <param name="Path">Path in the target release.</param>
/// <param name="SourcePath">Path of the source file in the source release (the same path, or a renamed one).</param>
/// <param name="SourceSha256">SHA-256 of the source file.</param>
/// <param name="Sha256">SHA-256 of the target file (equals the target manifest's).</param>
/// <param name="Size">Target file size.</param>
/// <param name="Method">Patch or chunks.</param>
/// <param name="WindowLog">zstd window log of the patch (0 for <see cref="DeltaMethod.Chunks"/>).</param>
/// <param name="Parts">Patch objects in order; their plaintexts concatenated form one zstd frame. Empty for chunks.</param>
public sealed record DeltaFile(string Path, string SourcePath, string SourceSha256, string Sha256, long Size,
    DeltaMethod Method, int WindowLog, IReadOnlyList<DeltaPart> Parts);

/// <summary>One stored patch object: a chunk object (store format) whose payload is stored uncompressed.</summary>
/// <param name="Id">Object id (SHA-256 of the stored bytes), stored under <c>chunks/</c>.</param>
/// <param name="Length">Plaintext (patch) bytes in it.</param>
/// <param name="Stored">Stored object size: <paramref name="Length"/> + header + tag.</param>
public sealed record DeltaPart(ChunkId Id, int Length, int Stored);
