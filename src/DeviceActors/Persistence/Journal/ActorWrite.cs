using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// The rows of one actor's <see cref="WriteMessages"/> (all its AtomicWrites but the rejected ones: they commit
/// together, as the plugin writes them in one transaction). <see cref="Settle"/> sends that actor the replies
/// AsyncWriteJournal would, in its order: <see cref="WriteMessagesSuccessful"/> (or <see cref="WriteMessagesFailed"/>),
/// then per event <see cref="WriteMessageSuccess"/>, <see cref="WriteMessageRejected"/> or
/// <see cref="WriteMessageFailure"/>, and <see cref="LoopMessageSuccess"/> for deferred messages, each with its
/// original sender.
/// </summary>
internal sealed class ActorWrite(
    JournalRowToWrite[] rows,
    WriteMessages message,
    int atomicWrites,
    Exception?[]? rejections,
    IActorRef journal,
    ConcurrentDictionary<string, ActorWrite> inProgress) : PendingWrite(rows)
{
    private TaskCompletionSource? _waiter;
    private bool _settled;

    /// <summary>Completes once the replies are sent (a recovery after a write must see it, as with the plugin).</summary>
    public Task WhenSettled()
    {
        lock (this)
        {
            if (_settled) return Task.CompletedTask;
            return (_waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <inheritdoc />
    public override void Settle(Exception? error)
    {
        var actor = message.PersistentActor;
        var instance = message.ActorInstanceId;
        actor.Tell(error is null ? WriteMessagesSuccessful.Instance : new WriteMessagesFailed(error, atomicWrites), journal);
        var atomicIndex = 0;
        foreach (var envelope in message.Messages)
        {
            if (envelope is AtomicWrite atomic)
            {
                var rejected = rejections?[atomicIndex];
                atomicIndex++;
                foreach (var p in (IImmutableList<IPersistentRepresentation>)atomic.Payload)
                {
                    object reply = error is not null ? new WriteMessageFailure(p, error, instance)
                        : rejected is not null ? new WriteMessageRejected(p, rejected, instance)
                        : new WriteMessageSuccess(p, instance);
                    actor.Tell(reply, p.Sender);
                }
            }
            else
            {
                actor.Tell(new LoopMessageSuccess(envelope.Payload, instance), envelope.Sender);
            }
        }
        foreach (var row in Rows) inProgress.TryRemove(new KeyValuePair<string, ActorWrite>(row.PersistenceId, this));
        TaskCompletionSource? waiter;
        lock (this)
        {
            _settled = true;
            waiter = _waiter;
        }
        waiter?.TrySetResult();
    }
}
