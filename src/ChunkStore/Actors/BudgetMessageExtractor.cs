using Akka.Cluster.Sharding;
using Orchestrator.Messages.Budgets;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>
/// Routes <see cref="IWithBudgetId"/> messages to the budget entities: entity id = budget id (<see cref="BudgetIds"/>),
/// shard = MurmurHash of the id modulo a fixed shard count (stable across processes; the same on every node).
/// </summary>
public sealed class BudgetMessageExtractor : HashCodeMessageExtractor
{
    /// <summary>Sharding type name of the budget region.</summary>
    public const string TypeName = "budgets";

    /// <summary>Default number of shards (about 10x the largest expected number of chunk nodes).</summary>
    public const int DefaultShardCount = 64;

    /// <summary>Creates the extractor.</summary>
    public BudgetMessageExtractor(int shardCount = DefaultShardCount) : base(shardCount) { }

    /// <inheritdoc />
    public override string? EntityId(object message) => (message as IWithBudgetId)?.BudgetId;
}

/// <summary>Registry key (Akka.Hosting) of the budget shard region or its proxy.</summary>
public sealed class BudgetShardRegion
{
    private BudgetShardRegion() { }
}
