using Akka.Cluster.Hosting;
using Akka.Hosting;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.Messages.Chunks;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>What the node tells <see cref="ChunkStoreHosting.WithChunkStore"/>.</summary>
/// <param name="HostsShards">True on nodes with the <paramref name="Role"/> role: they host the regions; other nodes get proxies.</param>
/// <param name="Backend">The blob backend (required when <paramref name="HostsShards"/>).</param>
/// <param name="CacheBytesPerEntity">LRU budget of one chunk prefix entity.</param>
/// <param name="BudgetIdleTimeout">A budget entity at rest passivates after this long without a message.</param>
/// <param name="Role">The cluster role that hosts the chunk store.</param>
public sealed record ChunkStoreHostingOptions(bool HostsShards, IChunkBlobStore? Backend, long CacheBytesPerEntity, TimeSpan BudgetIdleTimeout, string Role = "chunks");

/// <summary>The chunk store's one Akka.Hosting extension: its serializer bindings, the chunk region and the download-budget region.</summary>
public static class ChunkStoreHosting
{
    /// <summary>
    /// Registers the chunk shard region (<see cref="ChunkShardRegion"/>) and the budget shard region
    /// (<see cref="BudgetShardRegion"/>) on nodes that host the chunk store, or proxies to both elsewhere.
    /// </summary>
    public static AkkaConfigurationBuilder WithChunkStore(this AkkaConfigurationBuilder builder, ChunkStoreHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Chunk messages carry up to a few MiB of bytes: bound to their own binary serializer. (Budget messages are
        // IOrchestratorMessage and go through OrchestratorSerializer like every other contract.)
        builder.WithCustomSerializer("orch-chunks",
            [typeof(IChunkStoreCommand), typeof(ChunkFound), typeof(ChunkNotFound), typeof(ChunkStored), typeof(ChunkRejected), typeof(ChunkStoreFailed)],
            system => new ChunkMessageSerializer(system));
        var chunks = new ChunkShardMessageExtractor();
        var budgets = new BudgetMessageExtractor();
        if (options.HostsShards)
        {
            var backend = options.Backend ?? throw new ArgumentException("A node hosting the chunk store needs a blob backend.", nameof(options));
            // A chunk entity's cache is its point: it is never stopped for being idle.
            var shardOptions = new ShardOptions
            {
                Role = options.Role, RememberEntities = false, StateStoreMode = Akka.Cluster.Sharding.StateStoreMode.DData,
                ShouldPassivateIdleEntities = false,
            };
            builder.WithShardRegion<ChunkShardRegion>(ChunkShardMessageExtractor.TypeName,
                _ => ChunkShardActor.Props(backend, options.CacheBytesPerEntity), chunks, shardOptions);
            // Budget entities passivate themselves (only when at rest), so sharding's own idle passivation stays off.
            builder.WithShardRegion<BudgetShardRegion>(BudgetMessageExtractor.TypeName,
                id => BudgetActor.Props(id, options.BudgetIdleTimeout), budgets,
                new ShardOptions
                {
                    Role = options.Role, RememberEntities = false, StateStoreMode = Akka.Cluster.Sharding.StateStoreMode.DData,
                    ShouldPassivateIdleEntities = false, HandOffStopMessage = BudgetActor.Stop.Instance,
                });
        }
        else
        {
            builder.WithShardRegionProxy<ChunkShardRegion>(ChunkShardMessageExtractor.TypeName, options.Role, chunks);
            builder.WithShardRegionProxy<BudgetShardRegion>(BudgetMessageExtractor.TypeName, options.Role, budgets);
        }
        return builder;
    }
}
