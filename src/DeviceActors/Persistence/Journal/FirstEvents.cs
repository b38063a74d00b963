using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// Writes the first event of persistent actors that have no journal yet without starting them: each event goes to the
/// node's journal actor as the actor itself would send it (one <see cref="WriteMessages"/> with one
/// <see cref="AtomicWrite"/> at sequence number 1), so the event adapters tag it and the read journal (the device
/// registry) sees it exactly as an actor-written event. The journal's unique (persistence id, sequence number) key is
/// the guard: an id that has an event already, or whose actor writes its own first event meanwhile, fails alone (the
/// journal batches concurrent writes and retries a failed batch write by write) and is reported as not written.
/// An actor of such an id that is live while the event is written recovered without it: the caller must make it
/// recover again (see <see cref="DeviceActor"/>'s handling of <c>RecoverDevice</c>).
/// </summary>
public static class FirstEvents
{
    /// <summary>Which of <paramref name="persistenceIds"/> have at least one event in the node's device journal.</summary>
    /// <param name="system">The node's actor system (its default journal is <see cref="DeviceJournal"/>).</param>
    /// <param name="persistenceIds">Persistence ids to look up.</param>
    /// <param name="timeout">How long to wait for the journal's answer.</param>
    /// <param name="ct">Cancels the wait.</param>
    public static async Task<IReadOnlySet<string>> JournaledAsync(ActorSystem system, IReadOnlyCollection<string> persistenceIds, TimeSpan timeout,
        CancellationToken ct)
    {
        var answer = await JournalOf(system).Ask<object>(new FindJournaled(persistenceIds), timeout, ct).ConfigureAwait(false);
        return answer switch
        {
            FoundJournaled f => f.PersistenceIds,
            Status.Failure f => throw new InvalidOperationException("The device journal could not say which devices have events.", f.Cause),
            _ => throw new InvalidOperationException($"The device journal answered {answer.GetType().Name} to {nameof(FindJournaled)}."),
        };
    }

    /// <summary>
    /// Writes each event as sequence number 1 of its persistence id; completes when the journal settled every write
    /// (the journal settles each one, committed or failed; it has no call timeout). Ids must be distinct.
    /// </summary>
    /// <param name="system">The node's actor system.</param>
    /// <param name="events">Persistence id and event, one per id.</param>
    /// <returns>Per entry, in order: true when the event is committed, false when it was not stored (the id had an
    /// event already, or the write failed).</returns>
    public static Task<bool[]> WriteAsync(ActorSystem system, IReadOnlyList<(string PersistenceId, object Event)> events)
    {
        if (events.Count == 0) return Task.FromResult(Array.Empty<bool>());
        var distinct = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (pid, _) in events)
            if (!distinct.Add(pid)) throw new ArgumentException($"Persistence id '{pid}' is listed twice; list each once.", nameof(events));
        var done = new TaskCompletionSource<bool[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new Writer(JournalOf(system), events, done)).WithDeploy(Deploy.Local));
        return done.Task;
    }

    private static IActorRef JournalOf(ActorSystem system) => Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(DeviceJournal.PluginId);

    /// <summary>Sends the writes and collects the journal's per-event answers; stops once all are in.</summary>
    private sealed class Writer : ReceiveActor
    {
        private readonly bool[] _written;
        private readonly Dictionary<string, int> _index;
        private readonly TaskCompletionSource<bool[]> _done;
        private int _pending;

        public Writer(IActorRef journal, IReadOnlyList<(string PersistenceId, object Event)> events, TaskCompletionSource<bool[]> done)
        {
            _written = new bool[events.Count];
            _index = new Dictionary<string, int>(events.Count, StringComparer.Ordinal);
            _done = done;
            _pending = events.Count;
            var writerUuid = Guid.NewGuid().ToString("N");
            for (var i = 0; i < events.Count; i++)
            {
                var (pid, e) = events[i];
                _index[pid] = i;
                var first = new Persistent(e, 1, pid, string.Empty, false, ActorRefs.NoSender, writerUuid);
                // One WriteMessages per id: the journal commits or fails each on its own (one AtomicWrite each in a
                // single WriteMessages would be one write, all or nothing).
                journal.Tell(new WriteMessages([new AtomicWrite(first)], Self, 1));
            }
            Receive<WriteMessageSuccess>(m => Settle(m.Persistent, true));
            Receive<WriteMessageFailure>(m => Settle(m.Persistent, false));
            Receive<WriteMessageRejected>(m => Settle(m.Persistent, false));
            Receive<WriteMessagesSuccessful>(_ => { });
            Receive<WriteMessagesFailed>(_ => { });
        }

        private void Settle(IPersistentRepresentation p, bool written)
        {
            _written[_index[p.PersistenceId]] = written;
            if (--_pending > 0) return;
            _done.TrySetResult(_written);
            Context.Stop(Self);
        }

        protected override void PostStop()
        {
            _done.TrySetException(new InvalidOperationException("The first-event writer stopped before the journal answered every write."));
            base.PostStop();
        }
    }
}

/// <summary>Asks <see cref="DeviceJournal"/> which persistence ids have events; answered with <see cref="FoundJournaled"/>.</summary>
/// <param name="PersistenceIds">The ids to look up.</param>
internal sealed record FindJournaled(IReadOnlyCollection<string> PersistenceIds) : INoSerializationVerificationNeeded;

/// <summary>Answer to <see cref="FindJournaled"/>.</summary>
/// <param name="PersistenceIds">The looked-up ids that have at least one event.</param>
internal sealed record FoundJournaled(IReadOnlySet<string> PersistenceIds) : INoSerializationVerificationNeeded;
