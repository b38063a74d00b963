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

    /// <summary>Leases granted by this node's budget entities, tagged with budget (device, rollout, global).</summary>
    public static readonly Counter<long> BudgetLeases = Meter.CreateCounter<long>("orch_budget_leases", description: "Download-budget leases granted by this node's budget entities, by budget");

    /// <summary>Bytes leased to gateways by this node's budget entities, tagged with budget.</summary>
    public static readonly Counter<long> BudgetLeasedBytes = Meter.CreateCounter<long>("orch_budget_leased_bytes", unit: "By", description: "Bytes leased to gateways, by budget");

    /// <summary>Unspent lease bytes gateways gave back, tagged with budget.</summary>
    public static readonly Counter<long> BudgetReturnedBytes = Meter.CreateCounter<long>("orch_budget_returned_bytes", unit: "By", description: "Unspent lease bytes given back, by budget");

    /// <summary>Lease requests refused, tagged with the limit (device-rate, device-window, rollout-rate, global).</summary>
    public static readonly Counter<long> BudgetDenials = Meter.CreateCounter<long>("orch_budget_denials", description: "Lease requests refused by budget entities, by limit");

    /// <summary>Budget entities started on this node (first use, after passivation, or after moving here), tagged with budget.</summary>
    public static readonly Counter<long> BudgetEntitiesStarted = Meter.CreateCounter<long>("orch_budget_entities_started", description: "Budget entities started on this node, by budget");
}
