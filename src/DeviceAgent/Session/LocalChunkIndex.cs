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
public sealed record LocalChunk(string FullPath, long Offset, int Length);

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
        foreach (var f in manifest.Files) manifestByHash.TryAdd(f.Sha256, f);

        var toChunk = new List<string>();
        foreach (var entry in inventory)
        {
            var full = TreeInventory.ResolveInside(root, entry.Path);
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
}
