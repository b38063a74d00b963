using Orchestrator.ChunkStore.Codec;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>One HTTP Range request on a pack: bytes <see cref="Offset"/> .. <see cref="End"/> - 1, holding <see cref="Chunks"/> in offset order.</summary>
/// <param name="Pack">Pack object id.</param>
/// <param name="Offset">First byte requested.</param>
/// <param name="Length">Bytes requested (the chunks and the gaps between them).</param>
/// <param name="Chunks">The wanted chunks inside the range, sorted by offset.</param>
public sealed record PackRange(ChunkId Pack, long Offset, long Length, IReadOnlyList<PackedChunk> Chunks)
{
    /// <summary>One past the last byte requested.</summary>
    public long End => Offset + Length;
}

/// <summary>
/// Coalesces the chunks a device lacks into few Range requests: neighbours in the same pack separated by at most
/// <see cref="GapBytes"/> unwanted bytes share one request (the gap is fetched and discarded), and no request spans
/// more than <see cref="MaxRangeBytes"/> so a device downloads several ranges in parallel and a cut costs little.
/// The agent and <c>orch release plan</c> both call this, so the plan counts exactly the requests the agent makes.
/// </summary>
public static class PackRanges
{
    /// <summary>Largest gap of unwanted bytes fetched to join two wanted chunks into one request.</summary>
    public const long GapBytes = 32 * 1024;

    /// <summary>Largest span of one request (a single chunk object larger than this is still one request).</summary>
    public const long MaxRangeBytes = 8L * 1024 * 1024;

    /// <summary>The requests that fetch every chunk of <paramref name="wanted"/> (duplicates by chunk id are fetched once).</summary>
    public static List<PackRange> Coalesce(IEnumerable<PackedChunk> wanted, long gapBytes = GapBytes, long maxRangeBytes = MaxRangeBytes)
    {
        ArgumentNullException.ThrowIfNull(wanted);
        var ranges = new List<PackRange>();
        var byPack = wanted.DistinctBy(c => c.Chunk).GroupBy(c => c.Pack)
            .OrderBy(g => g.Key.Hex, StringComparer.Ordinal);
        foreach (var pack in byPack)
        {
            List<PackedChunk>? run = null;
            long start = 0, end = 0;
            foreach (var c in pack.OrderBy(c => c.Offset).ThenBy(c => c.Chunk.Hex, StringComparer.Ordinal))
            {
                var chunkEnd = c.Offset + c.Stored;
                if (run is not null && c.Offset - end <= gapBytes && Math.Max(end, chunkEnd) - start <= maxRangeBytes)
                {
                    run.Add(c);
                    end = Math.Max(end, chunkEnd);
                    continue;
                }
                if (run is not null) ranges.Add(new PackRange(pack.Key, start, end - start, run));
                run = [c];
                start = c.Offset;
                end = chunkEnd;
            }
            if (run is not null) ranges.Add(new PackRange(pack.Key, start, end - start, run));
        }
        return ranges;
    }
}
