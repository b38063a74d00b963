using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Throttling;

/// <summary>
/// The largest stored object (chunk) a device may have to fetch in one request, so throttle limits can be checked
/// against it at startup: the default chunker bound and the bound every published manifest records, plus the codec's
/// header and tag (a stored chunk is never longer than its plaintext plus those).
/// </summary>
public static class LargestObject
{
    /// <summary>Stored bytes of the largest chunk a chunker bound of <paramref name="maxPlaintext"/> can produce.</summary>
    public static long StoredSizeFor(int maxPlaintext) => (long)maxPlaintext + ChunkCodec.HeaderLength + ChunkCodec.TagLength;

    /// <summary>The largest object size and where it comes from (the default chunker, or the manifest that records a larger bound).</summary>
    /// <param name="store">The node's store; unreadable manifests are skipped (they are reported by <c>chunks verify</c>).</param>
    public static (long Bytes, string Source) In(FileSystemStore store)
    {
        var bytes = StoredSizeFor(ChunkingOptions.Default.Max);
        var source = $"the default chunk size bound of {ChunkingOptions.Default.Max} bytes plus {ChunkCodec.HeaderLength + ChunkCodec.TagLength} bytes of codec overhead";
        foreach (var product in store.EnumerateProducts())
        {
            foreach (var path in store.EnumerateManifestFiles(product).Where(p => p.EndsWith(".json", StringComparison.Ordinal)))
            {
                try
                {
                    if (store.ReadFile(path) is not { } data) continue;
                    var manifest = ManifestSerializer.Parse(data);
                    var size = StoredSizeFor(manifest.Chunking.Max);
                    if (size > bytes)
                    {
                        bytes = size;
                        source = $"{path} is chunked with a bound of {manifest.Chunking.Max} bytes";
                    }
                }
                catch (Exception e) when (e is InvalidInputException or IntegrityException or IOException or System.Text.Json.JsonException or FormatException)
                {
                    // An unreadable manifest cannot be served either (chunks verify reports it): nothing to learn from it here.
                }
            }
        }
        return (bytes, source);
    }
}
