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
/// <param name="Release">The whole-release stream (schema 2), or null for a per-file delta (schema 1).</param>
public sealed record DeltaManifest(
    string Product,
    DeltaEndpoint From,
    DeltaEndpoint To,
    DateTimeOffset CreatedUtc,
    int Level,
    IReadOnlyList<DeltaFile> Files,
    ReleaseStream? Release = null)
{
    /// <summary>Schema of a per-file delta (every changed file patched on its own, or fetched as chunks).</summary>
    public const int Schema = 1;

    /// <summary>Schema of a whole-release delta (<see cref="Release"/> set; files of method <see cref="DeltaMethod.Release"/>).</summary>
    public const int ReleaseSchema = 2;

    /// <summary>Schema of a whole-release delta whose files carry a <see cref="BranchFilterKind"/> (schema 2 plus a <c>filter</c> per source and release file).</summary>
    public const int FilteredReleaseSchema = 3;

    /// <summary>
    /// Schema of a whole-release delta whose frames are chained (<see cref="ReleaseStream.Chained"/>): schema 3 plus
    /// <c>release.prefix</c>; the <c>filter</c> fields are always written.
    /// </summary>
    public const int ChainedReleaseSchema = 4;

    /// <summary>
    /// Schema of a whole-release delta coded as one zstd frame (<see cref="ReleaseStream.OneFrame"/>) whose compressed
    /// bytes are split into objects: schema 4 with <c>release.coding</c> and <c>release.objects</c> instead of
    /// <c>frameContent</c>, <c>prefix</c> and <c>frames</c>.
    /// </summary>
    public const int OneFrameReleaseSchema = 5;

    /// <summary>
    /// The schema these contents are written with: an older agent that reads only schema 1 falls back to chunks on a
    /// schema 2 delta, one that reads 1 and 2 on a schema 3 delta, one that reads 1 to 3 on a schema 4 delta, one that
    /// reads 1 to 4 on a schema 5 delta.
    /// </summary>
    public int SchemaVersion => Release is null ? Schema
        : Release.OneFrame ? OneFrameReleaseSchema
        : Release.Chained ? ChainedReleaseSchema
        : Release.Sources.Any(s => s.Filter != BranchFilterKind.None) || Files.Any(f => f.Filter != BranchFilterKind.None) ? FilteredReleaseSchema
        : ReleaseSchema;

    /// <summary>Distinct stored objects the patches and release frames use.</summary>
    public IReadOnlySet<ChunkId> DistinctObjects() =>
        Files.SelectMany(f => f.Parts).Select(p => p.Id).Concat(Release?.Frames.Select(f => f.Id) ?? []).ToHashSet();

    /// <summary>Stored bytes of every patch object and release frame (what a device downloads for the listed files).</summary>
    public long PatchBytes => Files.SelectMany(f => f.Parts).Sum(p => (long)p.Stored) + (Release?.Frames.Sum(f => (long)f.Stored) ?? 0);

    /// <summary>The files carried by the release stream, in stream order (ordinal path order).</summary>
    public IReadOnlyList<DeltaFile> ReleaseFiles => Files.Where(f => f.Method == DeltaMethod.Release).ToList();
}

/// <summary>
/// The whole-release stream of a schema 2 or 3 delta. The reference is the source release's files concatenated in
/// <see cref="Sources"/> order (each at the sum of the sizes before it); the target stream is the content of the
/// delta's <see cref="DeltaMethod.Release"/> files concatenated in path order (in schema 3 each file, source and
/// target, transformed by its own <see cref="BranchFilterKind"/> first, offsets counted from the file's start), cut into pieces of
/// <see cref="FrameContent"/> bytes (the last may be shorter). Each piece is one zstd frame coded against a raw prefix:
/// the whole reference, or (<see cref="Chained"/>, schema 4) the reference followed by every earlier piece of the
/// stream. Each frame is stored as one encrypted object, so a device fetches and resumes every frame on its own and
/// applies them in stream order with managed memory bounded by <see cref="FrameContent"/> plus one object.
/// A <see cref="OneFrame"/> stream (schema 5) is instead ONE zstd frame over the whole target stream against the
/// reference (the builder indexes the reference once), its compressed bytes cut into objects of at most
/// <see cref="Chunking.ChunkingOptions.MaxChunkLimit"/> bytes listed in <see cref="Frames"/>: a device still fetches and
/// resumes per object, and decodes the objects' concatenation as one stream straight into its mapped file.
/// </summary>
/// <param name="WindowLog">zstd window log of every frame: 2^WindowLog covers the reference plus one piece (chained: plus the whole stream).</param>
/// <param name="FrameContent">Target-stream bytes per frame (every frame but the last decodes to exactly this); 0 for <paramref name="OneFrame"/>.</param>
/// <param name="Sources">The reference's files in order.</param>
/// <param name="Frames">Frame objects in stream order; for <paramref name="OneFrame"/>, the objects whose plaintexts concatenated are the one frame.</param>
/// <param name="Chained">
/// Frame k's prefix is the reference followed by the (transformed) stream bytes of frames 0..k-1, so a piece matches
/// earlier new content as one whole-stream zstd run would; 2^<paramref name="WindowLog"/> then covers the reference
/// plus the whole stream, and decoding frame k needs every earlier frame decoded. Always set with <paramref name="OneFrame"/>.
/// </param>
/// <param name="OneFrame">The whole target stream is one zstd frame split into the objects of <paramref name="Frames"/> (schema 5).</param>
public sealed record ReleaseStream(int WindowLog, int FrameContent, IReadOnlyList<ReleaseSource> Sources, IReadOnlyList<DeltaPart> Frames, bool Chained = false,
    bool OneFrame = false)
{
    /// <summary>Largest target-stream piece per frame: its zstd bound plus object header and tag stays within one 16 MiB object.</summary>
    public const int MaxFrameContent = 15 * 1024 * 1024;

    /// <summary>Smallest piece per frame (smaller pieces lose matches and add requests for nothing).</summary>
    public const int MinFrameContent = 64 * 1024;

    /// <summary>Bytes of the reference (the source release's files).</summary>
    public long SourceLength => Sources.Sum(s => s.Size);

    /// <summary>Offset of each source in the reference.</summary>
    public IReadOnlyList<long> SourceOffsets()
    {
        var offsets = new long[Sources.Count];
        long at = 0;
        for (var i = 0; i < Sources.Count; i++) { offsets[i] = at; at += Sources[i].Size; }
        return offsets;
    }
}

/// <summary>One file of a whole-release reference: the source release's file at <paramref name="Path"/>.</summary>
/// <param name="Path">Path in the source release.</param>
/// <param name="Sha256">Its SHA-256; a device whose file differs puts zeros in its place, so only target bytes copied from it come out wrong (and fail their file hash).</param>
/// <param name="Size">Its size.</param>
/// <param name="Filter">The branch transform its bytes take in the reference (schema 3).</param>
public sealed record ReleaseSource(string Path, string Sha256, long Size, BranchFilterKind Filter = BranchFilterKind.None);

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

    /// <summary>The file's content is in the whole-release stream (<see cref="DeltaManifest.Release"/>); no source path, no parts.</summary>
    Release,
}

/// <summary>One changed file.</summary>
/// <param name="Path">Path in the target release.</param>
/// <param name="SourcePath">Path of the source file in the source release (the same path, or a renamed one); empty for <see cref="DeltaMethod.Release"/>.</param>
/// <param name="SourceSha256">SHA-256 of the source file; empty for <see cref="DeltaMethod.Release"/>.</param>
/// <param name="Sha256">SHA-256 of the target file (equals the target manifest's).</param>
/// <param name="Size">Target file size.</param>
/// <param name="Method">Patch or chunks.</param>
/// <param name="WindowLog">zstd window log of the patch (0 for <see cref="DeltaMethod.Chunks"/>).</param>
/// <param name="Parts">Patch objects in order; their plaintexts concatenated form one zstd frame. Empty for chunks.</param>
/// <param name="Filter">For <see cref="DeltaMethod.Release"/>: the branch transform its bytes carry in the target stream, undone by the device (schema 3).</param>
public sealed record DeltaFile(string Path, string SourcePath, string SourceSha256, string Sha256, long Size,
    DeltaMethod Method, int WindowLog, IReadOnlyList<DeltaPart> Parts, BranchFilterKind Filter = BranchFilterKind.None);

/// <summary>One stored patch object: a chunk object (store format) whose payload is stored uncompressed.</summary>
/// <param name="Id">Object id (SHA-256 of the stored bytes), stored under <c>chunks/</c>.</param>
/// <param name="Length">Plaintext (patch) bytes in it.</param>
/// <param name="Stored">Stored object size: <paramref name="Length"/> + header + tag.</param>
public sealed record DeltaPart(ChunkId Id, int Length, int Stored);
