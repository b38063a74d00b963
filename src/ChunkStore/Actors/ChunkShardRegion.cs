namespace Orchestrator.ChunkStore.Actors;

/// <summary>Registry key (Akka.Hosting) of the chunk-store shard region or its proxy.</summary>
public sealed class ChunkShardRegion
{
    private ChunkShardRegion() { }
}
