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
    /// <summary>The manifest schema of a release whose files are each chunked on their own.</summary>
    public const int Schema = 1;

    /// <summary>The manifest schema of a release with a <see cref="Stream"/> (small files packed into one chunked stream).</summary>
    public const int StreamSchema = 2;

    /// <summary>
    /// The small-file stream (schema 2, docs/store-format.md "Small-file stream"): the files whose
    /// <see cref="ManifestFile.StreamOffset"/> is set, concatenated in manifest order and chunked as one; null in schema 1.
    /// </summary>
    public SmallFileStream? Stream { get; init; }

    /// <summary>The schema this manifest is written in: <see cref="StreamSchema"/> with a stream, else <see cref="Schema"/>.</summary>
    public int SchemaVersion => Stream is null ? Schema : StreamSchema;

    /// <summary>Sum of all file sizes.</summary>
    public long TotalBytes => Files.Sum(f => f.Size);

    /// <summary>Distinct chunk ids referenced by the files (a stream file references the stream chunks covering it).</summary>
    public IReadOnlySet<ChunkId> DistinctChunks() => Files.SelectMany(f => f.Chunks).Select(c => c.Id).ToHashSet();
}

/// <summary>One regular file of a release.</summary>
/// <param name="Path">Relative path with '/' separators.</param>
/// <param name="Mode">Unix permission bits (0 .. 0o777).</param>
/// <param name="Size">Length in bytes (= sum of chunk lengths).</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the whole content.</param>
/// <param name="Chunks">
/// The chunks holding the content, in order. For a file chunked on its own their lengths sum to <paramref name="Size"/>;
/// for a stream file (<see cref="StreamOffset"/> set) they are the stream chunks covering its byte range, the first
/// entered at <see cref="StreamSkip"/> and the last possibly left early: read content through <see cref="Pieces"/>.
/// </param>
public sealed record ManifestFile(string Path, int Mode, long Size, string Sha256, IReadOnlyList<ChunkRef> Chunks)
{
    /// <summary>Byte offset of the file in the manifest's <see cref="Manifest.Stream"/>; null for a file chunked on its own.</summary>
    public long? StreamOffset { get; init; }

    /// <summary>Where the file starts inside its first chunk (0 unless it is a stream file that does not start a chunk).</summary>
    public int StreamSkip { get; init; }

    /// <summary>True when the file's content lies in the small-file stream.</summary>
    public bool InStream => StreamOffset is not null;

    /// <summary>
    /// The file's content as slices of chunk plaintexts, in file order: every consumer that rebuilds or reads a file's
    /// bytes goes through this, so a stream file (whose chunks it shares with its neighbours) reads exactly its range.
    /// </summary>
    public IEnumerable<FilePiece> Pieces()
    {
        long fileOffset = 0;
        var skip = StreamSkip;
        foreach (var c in Chunks)
        {
            var length = (int)Math.Min(c.Length - skip, Size - fileOffset);
            yield return new FilePiece(c, fileOffset, skip, length);
            fileOffset += length;
            skip = 0;
        }
    }
}

/// <summary>A slice of one chunk's plaintext that is part of a file.</summary>
/// <param name="Chunk">The chunk.</param>
/// <param name="FileOffset">Where the slice goes in the file.</param>
/// <param name="ChunkOffset">Where the slice starts in the chunk's plaintext.</param>
/// <param name="Length">Slice length (the whole chunk for a file chunked on its own).</param>
public readonly record struct FilePiece(ChunkRef Chunk, long FileOffset, int ChunkOffset, int Length)
{
    /// <summary>True when the slice is the whole chunk.</summary>
    public bool Whole => ChunkOffset == 0 && Length == Chunk.Length;
}

/// <summary>
/// The small-file stream of a schema-2 manifest: the stream files' contents concatenated in manifest order, cut by the
/// manifest's chunker. Each stream chunk is listed once here; each stream file maps to its byte range.
/// </summary>
/// <param name="Size">Stream length in bytes (= the stream files' sizes summed = the chunk lengths summed).</param>
/// <param name="Chunks">The stream's chunks in order.</param>
public sealed record SmallFileStream(long Size, IReadOnlyList<ChunkRef> Chunks)
{
    /// <summary>Start offset of every chunk in the stream (one more entry: the end).</summary>
    public long[] ChunkStarts()
    {
        var starts = new long[Chunks.Count + 1];
        for (var i = 0; i < Chunks.Count; i++) starts[i + 1] = starts[i] + Chunks[i].Length;
        return starts;
    }

    /// <summary>
    /// <paramref name="file"/> (its <see cref="ManifestFile.StreamOffset"/> and size set) with the stream chunks covering
    /// its range and its skip into the first; null when the range does not lie inside the stream.
    /// </summary>
    public ManifestFile? Attach(ManifestFile file, long[] starts)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(starts);
        if (file.StreamOffset is not { } offset || offset < 0 || file.Size < 1 || offset > Size - file.Size) return null;
        // The chunk holding the file's first byte: the last start <= offset.
        var first = Array.BinarySearch(starts, 0, Chunks.Count, offset);
        if (first < 0) first = ~first - 1;
        var end = offset + file.Size;
        var last = first;
        while (starts[last + 1] < end) last++;
        var covering = new ChunkRef[last - first + 1];
        for (var i = first; i <= last; i++) covering[i - first] = Chunks[i];
        return file with { Chunks = covering, StreamSkip = (int)(offset - starts[first]) };
    }
}

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
