using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Actors;
using Orchestrator.Messages.Chunks;

namespace Orchestrator.Node.Gateway;

/// <summary>The gateway's handle on the chunk-store shard region (local region or proxy, whichever this node has).</summary>
public sealed class ChunkClient(IRequiredActor<ChunkShardRegion> region, TimeSpan timeout)
{
    /// <summary>Asks the owning shard for a chunk: <see cref="ChunkFound"/>, <see cref="ChunkNotFound"/> or <see cref="ChunkStoreFailed"/>.</summary>
    public async Task<object> GetAsync(string chunkId, CancellationToken ct)
    {
        var actor = await region.GetAsync(ct).ConfigureAwait(false);
        return await actor.Ask<object>(new GetChunk(chunkId), timeout, ct).ConfigureAwait(false);
    }

    /// <summary>Stores a chunk through its shard: <see cref="ChunkStored"/>, <see cref="ChunkRejected"/> or <see cref="ChunkStoreFailed"/>.</summary>
    public async Task<object> PutAsync(string chunkId, byte[] data, CancellationToken ct)
    {
        var actor = await region.GetAsync(ct).ConfigureAwait(false);
        return await actor.Ask<object>(new PutChunk(chunkId, data), timeout, ct).ConfigureAwait(false);
    }
}
