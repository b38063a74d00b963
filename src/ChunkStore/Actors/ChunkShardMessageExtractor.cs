using Akka.Cluster.Sharding;
using Orchestrator.Messages.Chunks;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>
/// Routes chunk commands by id prefix: entity = first two hex characters (the same split as the store's
/// <c>chunks/&lt;2 hex&gt;/</c> folders, 256 entities), shard = first hex character (16 shards to spread over nodes).
/// </summary>
public sealed class ChunkShardMessageExtractor : IMessageExtractor
{
    /// <summary>Sharding type name of the chunk-store region.</summary>
    public const string TypeName = "chunks";

    /// <inheritdoc />
    public string? EntityId(object message) => message switch
    {
        IChunkStoreCommand c when c.ChunkId.Length >= 2 => c.ChunkId[..2],
        _ => null,
    };

    /// <inheritdoc />
    public object? EntityMessage(object message) => message;

    /// <inheritdoc />
    public string? ShardId(object message) => message switch
    {
        IChunkStoreCommand c when c.ChunkId.Length >= 1 => c.ChunkId[..1],
        _ => null,
    };

    /// <inheritdoc />
    public string ShardId(string entityId, object? messageHint = null) => entityId[..1];
}
