using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.Messages.Channels;

namespace Orchestrator.Node.Channels;

/// <summary>
/// Every product's channels and their current releases: one persistent actor (persistence id <c>channels</c>) run as a
/// cluster singleton on role <c>rollouts</c> (see <see cref="ChannelHosting"/>). Decisions come from
/// <see cref="ChannelState"/>; replies go out after the write, and after every change the whole directory is
/// published on <see cref="ChannelTopics.Changes"/> so each node's <see cref="ChannelCache"/> answers check-ins without
/// asking. A singleton rather than an actor per channel: channels are few and change rarely, and one authority keeps
/// the published revision a single increasing number.
/// </summary>
public sealed class ChannelDirectoryActor : ReceivePersistentActor
{
    /// <summary>Persistence id of the directory.</summary>
    public const string DirectoryPersistenceId = "channels";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeProvider _clock;
    private readonly int _snapshotEvery;
    private readonly IActorRef? _mediator;
    private ChannelState _state = new();
    private long _lastSnapshot;

    /// <summary>Props of the directory.</summary>
    /// <param name="clock">Clock of event timestamps.</param>
    /// <param name="snapshotEvery">Save a snapshot after this many events.</param>
    /// <param name="publish">Publish changes through distributed pub-sub (off only for tests without a cluster).</param>
    public static Props Props(TimeProvider clock, int snapshotEvery = 100, bool publish = true) =>
        Akka.Actor.Props.Create(() => new ChannelDirectoryActor(clock, snapshotEvery, publish));

    /// <summary>Use <see cref="Props"/>.</summary>
    public ChannelDirectoryActor(TimeProvider clock, int snapshotEvery, bool publish)
    {
        _clock = clock;
        _snapshotEvery = snapshotEvery;
        _mediator = publish ? DistributedPubSub.Get(Context.System).Mediator : null;
        Recover<SnapshotOffer>(o =>
        {
            _state = ChannelState.FromSnapshot((ChannelDirectorySnapshot)o.Snapshot, o.Metadata.SequenceNr);
            _lastSnapshot = o.Metadata.SequenceNr;
        });
        Recover<IChannelEvent>(e => _state.Apply(e, LastSequenceNr));
        Recover<RecoveryCompleted>(_ => Publish());

        Command<GetChannels>(q => Sender.Tell(_state.View(q.Product)));
        Command<SetChannelRelease>(c =>
        {
            var (events, rejected) = _state.DecideSet(c, _clock.GetUtcNow());
            if (rejected is not null) Sender.Tell(rejected);
            else PersistThen(events, Sender, () => _state.Find(c.Product, c.Channel)!);
        });
        Command<SyncRolloutChannel>(c =>
        {
            if (ChannelRules.Problem("channel", c.Channel) is { } bad)
            {
                Sender.Tell(new ChannelRejected("invalid_channel", bad));
                return;
            }
            PersistThen(_state.DecideSync(c, _clock.GetUtcNow()), Sender, () => new RolloutChannelSynced(c.RolloutId, c.Status));
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "Snapshot of the channel directory failed; recovery replays more events"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "Deleting old channel directory snapshots failed"));
    }

    /// <inheritdoc />
    public override string PersistenceId => DirectoryPersistenceId;

    private void PersistThen(IReadOnlyList<IChannelEvent> events, IActorRef replyTo, Func<object> reply)
    {
        if (events.Count == 0)
        {
            replyTo.Tell(reply());
            return;
        }
        var left = events.Count;
        PersistAll(events, e =>
        {
            _state.Apply(e, LastSequenceNr);
            if (--left > 0) return;
            replyTo.Tell(reply());
            Publish();
            if (LastSequenceNr - _lastSnapshot >= _snapshotEvery)
            {
                _lastSnapshot = LastSequenceNr;
                SaveSnapshot(_state.ToSnapshot());
            }
        });
    }

    private void Publish() => _mediator?.Tell(new Publish(ChannelTopics.Changes, _state.View()));
}
