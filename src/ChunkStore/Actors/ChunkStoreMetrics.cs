using System.Diagnostics.Metrics;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>Instruments of the chunk store (exported by the node's metrics endpoint under meter <see cref="MeterName"/>).</summary>
public static class ChunkStoreMetrics
{
    /// <summary>Name of the meter; the node subscribes to it.</summary>
    public const string MeterName = "Orchestrator.ChunkStore";

    private static readonly Meter Meter = new(MeterName);

    /// <summary>Chunk reads answered from the in-memory LRU.</summary>
    public static readonly Counter<long> CacheHits = Meter.CreateCounter<long>("orch_chunk_cache_hits", description: "Chunk reads served from the LRU");

    /// <summary>Chunk reads that went to the blob backend.</summary>
    public static readonly Counter<long> CacheMisses = Meter.CreateCounter<long>("orch_chunk_cache_misses", description: "Chunk reads that went to the blob backend");

    /// <summary>Chunks newly written (not deduplicated).</summary>
    public static readonly Counter<long> ChunksWritten = Meter.CreateCounter<long>("orch_chunks_written", description: "Chunks newly written to the backend");

    /// <summary>Puts answered as already present.</summary>
    public static readonly Counter<long> ChunksDeduplicated = Meter.CreateCounter<long>("orch_chunks_deduplicated", description: "Chunk puts that were already present");
}
