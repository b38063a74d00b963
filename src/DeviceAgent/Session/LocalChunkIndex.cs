using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>Where a chunk's plaintext can be read from the installed tree.</summary>
/// <param name="FullPath">Local file.</param>
/// <param name="Offset">Byte offset of the chunk in the file.</param>
/// <param name="Length">Plaintext length.</param>
public sealed record LocalChunk(string FullPath, long Offset, int Length)
{
    /// <summary>
    /// For a small-file stream chunk: the local file ranges whose concatenation is its plaintext (the held files it
    /// spans, in stream order); null when the chunk lies in one file at <see cref="Offset"/>.
    /// </summary>
    public IReadOnlyList<LocalChunk>? Segments { get; init; }

    /// <summary>Reads the chunk's plaintext into <paramref name="into"/> (exactly <see cref="Length"/> bytes); false when a file is now shorter.</summary>
    public bool TryRead(Span<byte> into)
    {
        var at = 0;
        foreach (var part in Segments ?? [this])
        {
            using var handle = File.OpenHandle(part.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read);
            var slice = into.Slice(at, part.Length);
            var read = 0;
            while (read < slice.Length)
            {
                var n = RandomAccess.Read(handle, slice[read..], part.Offset + read);
                if (n == 0) return false;
                read += n;
            }
            at += part.Length;
        }
        return at == Length;
    }
}

/// <summary>
/// Finds which chunks of a manifest the device already holds in its installed tree, so only the rest is
/// downloaded. Files whose hash equals a manifest file's hash contribute that file's chunk list directly (no
/// work); every other local file is cut with the manifest's chunking parameters and each piece's keyed
/// plaintext tag (docs/store-format.md, manifest <c>tag</c>) is compared with the manifest's tags: one SHA-256 and
/// one HMAC per piece, no compression or encryption, and independent of the publisher's zstd build. A match
/// means equal plaintext (under the content key); the SHA-256 of every assembled file is still checked before
/// anything is installed.
/// </summary>
public static class LocalChunkIndex
{
    /// <summary>Builds the index of chunks present locally, limited to ids in <paramref name="wanted"/>.</summary>
    public static Dictionary<ChunkId, LocalChunk> Build(string root, IReadOnlyList<InventoryEntry> inventory, Manifest manifest,
        ContentKey key, IReadOnlySet<ChunkId> wanted, CancellationToken ct)
    {
        var found = new Dictionary<ChunkId, LocalChunk>();
        if (wanted.Count == 0) return found;
        var manifestByHash = new Dictionary<string, ManifestFile>(StringComparer.Ordinal);
        foreach (var f in manifest.Files) if (!f.InStream) manifestByHash.TryAdd(f.Sha256, f);
        var streamHashes = manifest.Files.Where(f => f.InStream).Select(f => f.Sha256).ToHashSet(StringComparer.Ordinal);
        var heldByHash = new Dictionary<string, string>(StringComparer.Ordinal);

        var toChunk = new List<string>();
        foreach (var entry in inventory)
        {
            var full = TreeInventory.ResolveInside(root, entry.Path);
            heldByHash.TryAdd(entry.Sha256, full);
            if (streamHashes.Contains(entry.Sha256) && !manifestByHash.ContainsKey(entry.Sha256)) continue; // used whole by the stream below
            if (manifestByHash.TryGetValue(entry.Sha256, out var same))
            {
                long offset = 0;
                foreach (var c in same.Chunks)
                {
                    if (wanted.Contains(c.Id)) found.TryAdd(c.Id, new LocalChunk(full, offset, c.Length));
                    offset += c.Length;
                }
            }
            else
            {
                toChunk.Add(full);
            }
        }

        if (manifest.Stream is not null) FindStreamChunks(manifest, heldByHash, wanted, found);

        // Nothing left to cut (a fresh device, or every local file is a release file): no tag table, which would hold
        // an entry per wanted chunk of the release.
        if (toChunk.Count == 0 || found.Count == wanted.Count) return found;

        // Tag -> the wanted chunks with that plaintext (normally one id; an older store may hold two encodings).
        var wantedByTag = new Dictionary<string, List<ChunkRef>>(StringComparer.Ordinal);
        foreach (var f in manifest.Files)
            foreach (var c in f.Chunks)
            {
                if (!wanted.Contains(c.Id) || found.ContainsKey(c.Id)) continue;
                if (!wantedByTag.TryGetValue(c.Tag, out var list)) wantedByTag[c.Tag] = list = [];
                if (!list.Exists(r => r.Id == c.Id)) list.Add(c);
            }

        var chunker = new FastCdcChunker(manifest.Chunking);
        foreach (var full in toChunk)
        {
            if (found.Count == wanted.Count) break;
            ct.ThrowIfCancellationRequested();
            using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            long offset = 0;
            foreach (var piece in chunker.Chunks(fs))
            {
                if (wantedByTag.TryGetValue(ChunkCodec.ManifestTag(piece.Span, key), out var matches))
                    foreach (var c in matches)
                        if (c.Length == piece.Length) found.TryAdd(c.Id, new LocalChunk(full, offset, piece.Length));
                offset += piece.Length;
            }
        }
        return found;
    }

    /// <summary>
    /// The wanted small-file stream chunks whose every overlapping file the device holds (by hash, at any path): each is
    /// read as the concatenation of those files' ranges. The target manifest alone says this, so no earlier manifest is
    /// kept, and a renamed or reordered small file still counts.
    /// </summary>
    private static void FindStreamChunks(Manifest manifest, Dictionary<string, string> heldByHash, IReadOnlySet<ChunkId> wanted, Dictionary<ChunkId, LocalChunk> found)
    {
        var stream = manifest.Stream!;
        var starts = stream.ChunkStarts();
        var files = manifest.Files.Where(f => f.InStream).ToList();
        var first = 0;
        for (var i = 0; i < stream.Chunks.Count; i++)
        {
            var c = stream.Chunks[i];
            long start = starts[i], end = starts[i + 1];
            while (first < files.Count && files[first].StreamOffset!.Value + files[first].Size <= start) first++;
            if (!wanted.Contains(c.Id) || found.ContainsKey(c.Id)) continue;
            var segments = new List<LocalChunk>();
            for (var j = first; j < files.Count && files[j].StreamOffset!.Value < end; j++)
            {
                var f = files[j];
                if (!heldByHash.TryGetValue(f.Sha256, out var full)) { segments = null; break; }
                var offset = f.StreamOffset!.Value;
                var from = Math.Max(start, offset);
                var to = Math.Min(end, offset + f.Size);
                segments.Add(new LocalChunk(full, from - offset, (int)(to - from)));
            }
            if (segments is { Count: > 0 }) found[c.Id] = new LocalChunk(segments[0].FullPath, segments[0].Offset, c.Length) { Segments = segments };
        }
    }
}
