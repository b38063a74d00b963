using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// Carries the device actors' journal marks between nodes, so the idle fast path of every node declines a device whose
/// actor journaled (and so may have acknowledged) an event its registry row has not folded yet. The first mark after a
/// publish wakes the carry, which publishes everything marked by then on <see cref="SightingTopics.Journaled"/> in
/// <see cref="DevicesJournaled"/> batches (no timer: a mark leaves within one mailbox turn, and marks made meanwhile
/// share the message); every other node's batches are recorded in this node's table.
/// Pub-sub is best effort and not awaited by the actor's reply: on the other nodes a mark lands one pub-sub hop after
/// the acknowledgement, and a lost batch leaves those nodes to the registry's lag for that event, which can only delay
/// an order ("nothing to do" until the row folds it), never give a wrong one.
/// </summary>
public sealed class JournalMarksCarry : ReceiveActor
{
    private readonly DeviceRowTable _table;
    private readonly IActorRef _mediator;

    /// <summary>Props of the carry.</summary>
    /// <param name="table">This node's rows, where its device actors mark what they journal.</param>
    public static Props Props(DeviceRowTable table) => Akka.Actor.Props.Create(() => new JournalMarksCarry(table));

    /// <summary>Use <see cref="Props"/>.</summary>
    public JournalMarksCarry(DeviceRowTable table)
    {
        _table = table;
        _mediator = DistributedPubSub.Get(Context.System).Mediator;
        Receive<SubscribeAck>(_ => { });
        Receive<DevicesJournaled>(batch =>
        {
            // This node's own batches come back through the topic; its rows were marked before they were sent.
            if (Sender.Equals(Self)) return;
            var resets = batch.SequenceResets.Count == 0 ? null : batch.SequenceResets.ToHashSet();
            for (var i = 0; i < batch.DeviceIds.Count; i++)
                _table.JournaledElsewhere(batch.DeviceIds[i], batch.SequenceNrs[i], resets?.Contains(i) == true);
        });
        Receive<MarksWaiting>(_ => Publish());
    }

    /// <inheritdoc />
    protected override void PreStart()
    {
        _mediator.Tell(new Subscribe(SightingTopics.Journaled, Self));
        var self = Self;
        _table.CarryMarks(() => self.Tell(MarksWaiting.Instance));
    }

    private void Publish()
    {
        var pending = _table.TakePendingMarks();
        for (var start = 0; start < pending.Count; start += DevicesJournaled.MaxBatch)
        {
            var count = Math.Min(DevicesJournaled.MaxBatch, pending.Count - start);
            var ids = new string[count];
            var sequenceNrs = new long[count];
            var resets = new List<int>();
            for (var i = 0; i < count; i++)
            {
                var (id, sequenceNr, reset) = pending[start + i];
                (ids[i], sequenceNrs[i]) = (id, sequenceNr);
                if (reset) resets.Add(i);
            }
            _mediator.Tell(new Publish(SightingTopics.Journaled, new DevicesJournaled(ids, sequenceNrs, resets)), Self);
        }
    }

    private sealed class MarksWaiting : INoSerializationVerificationNeeded
    {
        public static readonly MarksWaiting Instance = new();
    }
}
