using Orchestrator.ChunkStore.Codec;
using Akka.Actor;
using Akka.Event;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.Messages.Chunks;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>
/// One chunk-id prefix (two hex characters) of the store: an LRU of hot chunks over the blob backend.
/// Backend I/O never blocks the mailbox: reads and writes run as tasks whose results come back as messages.
/// Concurrent misses for the same chunk share one backend read.
/// </summary>
public sealed class ChunkShardActor : ReceiveActor
{
    private readonly IChunkBlobStore _backend;
    private readonly ChunkLru _lru;
    private readonly Dictionary<string, List<IActorRef>> _pendingReads = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private sealed record ReadCompleted(string ChunkId, byte[]? Data);
    private sealed record ReadFailed(string ChunkId, string Reason);

    /// <summary>Props for one prefix entity.</summary>
    public static Props Props(IChunkBlobStore backend, long cacheBytesPerEntity) =>
        Akka.Actor.Props.Create(() => new ChunkShardActor(backend, cacheBytesPerEntity));

    /// <summary>Creates the entity; use <see cref="Props(IChunkBlobStore, long)"/>.</summary>
    public ChunkShardActor(IChunkBlobStore backend, long cacheBytesPerEntity)
    {
        _backend = backend;
        _lru = new ChunkLru(cacheBytesPerEntity);
        Serving();
    }

    private void Serving()
    {
        Receive<GetChunk>(OnGet);
        Receive<ReadCompleted>(OnReadCompleted);
        Receive<ReadFailed>(OnReadFailed);
        Receive<PutChunk>(OnPut);
    }

    private void OnGet(GetChunk get)
    {
        if (!ChunkId.IsValid(get.ChunkId))
        {
            Sender.Tell(new ChunkNotFound(get.ChunkId));
            return;
        }
        if (_lru.TryGet(get.ChunkId, out var cached))
        {
            ChunkStoreMetrics.CacheHits.Add(1);
            Sender.Tell(new ChunkFound(get.ChunkId, cached));
            return;
        }
        if (_pendingReads.TryGetValue(get.ChunkId, out var waiters))
        {
            waiters.Add(Sender);
            return;
        }
        ChunkStoreMetrics.CacheMisses.Add(1);
        _pendingReads[get.ChunkId] = [Sender];
        var id = get.ChunkId;
        _backend.ReadAsync(id).PipeTo(Self,
            success: data => new ReadCompleted(id, data),
            failure: ex => new ReadFailed(id, ex.GetBaseException().Message));
    }

    private void OnReadCompleted(ReadCompleted done)
    {
        if (done.Data is not null) _lru.Add(done.ChunkId, done.Data);
        object answer = done.Data is null ? new ChunkNotFound(done.ChunkId) : new ChunkFound(done.ChunkId, done.Data);
        Reply(done.ChunkId, answer);
    }

    private void OnReadFailed(ReadFailed failed)
    {
        _log.Warning("Reading chunk {0} from {1} failed: {2}", failed.ChunkId, _backend.Name, failed.Reason);
        Reply(failed.ChunkId, new ChunkStoreFailed(failed.ChunkId, failed.Reason));
    }

    private void Reply(string chunkId, object answer)
    {
        if (!_pendingReads.Remove(chunkId, out var waiters)) return;
        foreach (var w in waiters) w.Tell(answer);
    }

    private void OnPut(PutChunk put)
    {
        var sender = Sender;
        if (!ChunkId.IsValid(put.ChunkId))
        {
            sender.Tell(new ChunkRejected(put.ChunkId, $"Chunk id '{put.ChunkId}' is not 64 lower-case hex characters."));
            return;
        }
        // Hash and write off the mailbox; the reply goes straight to the asker.
        Task.Run(async () =>
        {
            if (!ChunkId.Parse(put.ChunkId).Matches(put.Data))
            {
                return (object)new ChunkRejected(put.ChunkId,
                    $"Chunk bytes hash to {ChunkId.Of(put.Data).Hex}, not to the id {put.ChunkId}; the id must be the SHA-256 of the stored bytes.");
            }
            var written = await _backend.PutIfAbsentAsync(put.ChunkId, put.Data).ConfigureAwait(false);
            (written ? ChunkStoreMetrics.ChunksWritten : ChunkStoreMetrics.ChunksDeduplicated).Add(1);
            return new ChunkStored(put.ChunkId, AlreadyPresent: !written);
        }).PipeTo(sender, failure: ex => new ChunkStoreFailed(put.ChunkId, ex.GetBaseException().Message));
    }
}
