using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Registry;

/// <summary>
/// The registry's rows, shared with the node's gateway so it can answer an idle device's check-in without the device's
/// actor (the idle fast path, <see cref="IdleCheckIn"/>), and the node's sightings (<see cref="IDeviceSightings"/>):
/// every check-in answered here, and every sighting carried from other nodes, raises the device's latest contact, which
/// offline detection reads. The <see cref="DeviceRegistry"/> is the only writer of rows; it reads its rows on its own
/// thread, and adds rows under a lock that gateway lookups take too (a dictionary must not be read while it grows).
/// The rows lag the journal (by the registry's query interval, longer while it catches up after a start), and the fast
/// path must never answer from a row older than an order the device's actor acknowledged. So it answers nothing until
/// the registry has folded the journal as it stood at the registry's start (<see cref="CaughtUp"/>: an order given
/// before a restart reaches the device at its first check-in), and for an order given since, the device's actor marks
/// every event it journals here before it replies (<see cref="IDeviceJournalMarks"/>), the node carries its marks to
/// every other node at once (<see cref="TakePendingMarks"/>, <see cref="JournaledElsewhere"/>), and a row below its
/// device's mark declines. The fast path only ever answers "nothing to do", so a mark that reaches another node late
/// (one pub-sub hop, or the registry's lag if the hop is lost) can delay an order there, never give a wrong one.
/// </summary>
public sealed class DeviceRowTable : IDeviceSightings, IDeviceJournalMarks
{
    /// <summary>
    /// Most fast-path sightings waiting to be carried to other nodes. Beyond it the fast path declines (the actor
    /// answers, and hears the device itself) rather than answer a check-in whose sighting the device's actor, on another
    /// node, might never see.
    /// </summary>
    public const int MaxPendingSightings = 200_000;

    private readonly Dictionary<string, DeviceRow> _rows = new(StringComparer.Ordinal);
    private readonly Lock _adding = new();
    // Sightings of devices without a row here (a node without the registry hosts device actors): id -> latest ticks.
    private readonly Dictionary<string, long> _unrowed = new(StringComparer.Ordinal);
    private readonly Lock _pendingLock = new();
    private List<(string DeviceId, long UtcTicks)>? _pending;
    private volatile bool _caughtUp;
    // Journal marks of devices without a row yet (their first events are not folded): id -> highest sequence number.
    // Kept only while a registry folds into this table, which gives every journaled device a row (and takes the mark).
    private readonly Dictionary<string, long> _unrowedMarks = new(StringComparer.Ordinal);
    private bool _folded;
    // Marks of this node's actors waiting to be carried to the other nodes, and who to tell when the first one arrives.
    private readonly Lock _marksLock = new();
    private List<(string DeviceId, long SequenceNr, bool SequenceReset)>? _pendingMarks;
    private Action? _marksWaiting;

    /// <summary>Rows by device id; read only on the registry's thread (its only writer).</summary>
    internal Dictionary<string, DeviceRow> Rows => _rows;

    /// <summary>
    /// The registry has folded the journal up to where it stood when the registry started; until then a row may miss
    /// an order journaled before the start, so the fast path declines.
    /// </summary>
    public bool CaughtUp => _caughtUp;

    /// <summary>The registry reached the journal's end as of its start (registry thread only).</summary>
    internal void MarkCaughtUp() => _caughtUp = true;

    /// <summary>The row of <paramref name="id"/>, added when missing (registry thread only).</summary>
    internal DeviceRow GetOrAdd(ReadOnlySpan<char> id)
    {
        // Looked up by span: one id string per device (the key), not one per event.
        if (_rows.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(id, out var row)) return row;
        var key = DeviceState.Initial(id.ToString()).DeviceId; // validates the id as the actors do
        row = new DeviceRow(key);
        lock (_adding)
        {
            _rows[key] = row;
            // A sighting or a journal mark that arrived before the device's first event was folded here is its row's from now on.
            if (_unrowed.Remove(key, out var ticks)) row.Sighted(ticks);
            if (_unrowedMarks.Remove(key, out var mark)) row.Journaled(mark, sequenceReset: false);
        }
        return row;
    }

    private DeviceRow? Find(string deviceId)
    {
        lock (_adding) return _rows.GetValueOrDefault(deviceId);
    }

    /// <summary>
    /// The fast path for <paramref name="c"/>: <c>Answer</c> is the actor's "nothing to do" when the row proves the
    /// check-in changes nothing (<see cref="IdleCheckIn.Answer"/>); <c>Refused</c> is the replay refusal when
    /// <paramref name="c"/> repeats a request the fast path already answered (the actor never saw it, so it could not
    /// refuse it). Both null: ask the actor (also before the registry caught up, and while the sightings waiting to be
    /// carried are at <see cref="MaxPendingSightings"/>). An answer is recorded as a sighting.
    /// </summary>
    public (CheckInDecision? Answer, DeviceCommandRejected? Refused) TryAnswer(CheckIn c, TimeSpan lastSeenPersistInterval)
    {
        if (!_caughtUp || Find(c.DeviceId) is not { } row) return (null, null);
        if (DeviceRequestSequence.RefuseReplay(c, row.FastSequence) is { } replayed) return (null, replayed);
        // A copy of this request claimed since the check above makes the row not idle for it: that is a replay to refuse
        // here, not a request for the actor (whose own sequence never saw the fast path's answer).
        if (row.AnswerIdle(c, lastSeenPersistInterval) is not { } answer) return (null, DeviceRequestSequence.RefuseReplay(c, row.FastSequence));
        lock (_pendingLock)
        {
            if (_pending is { Count: >= MaxPendingSightings }) return (null, null);
            if (!row.TryClaim(c)) return (null, DeviceRequestSequence.RefuseReplay(c, row.FastSequence));
            _pending?.Add((row.DeviceId, c.Timestamp.UtcTicks));
        }
        return (answer, null);
    }

    /// <summary>Records that the actor of <paramref name="deviceId"/> answered its check-in <paramref name="sequence"/> at <paramref name="at"/>.</summary>
    public void AnsweredByActor(string deviceId, DateTimeOffset at, long sequence) => Find(deviceId)?.AnsweredByActor(at, sequence);

    /// <summary>
    /// From now on the fast path's sightings are kept for <see cref="TakePendingSightings"/> (the node carries them to
    /// the other nodes); without a carry they are only this node's.
    /// </summary>
    public void CarrySightings()
    {
        lock (_pendingLock) _pending ??= [];
    }

    /// <summary>The fast path's sightings since the last call (oldest first); empty without <see cref="CarrySightings"/>.</summary>
    public IReadOnlyList<(string DeviceId, long UtcTicks)> TakePendingSightings()
    {
        lock (_pendingLock)
        {
            if (_pending is not { Count: > 0 } taken) return [];
            // Sized for as many as the last interval's: the list is refilled at the check-in rate, not grown from empty.
            _pending = new List<(string, long)>(taken.Count);
            return taken;
        }
    }

    /// <summary>Records a sighting of <paramref name="deviceId"/> at <paramref name="utcTicks"/> carried from another node.</summary>
    public void Sighted(string deviceId, long utcTicks)
    {
        lock (_adding)
        {
            if (_rows.TryGetValue(deviceId, out var row))
            {
                row.Sighted(utcTicks);
                return;
            }
            if (!_unrowed.TryGetValue(deviceId, out var known) || known < utcTicks) _unrowed[deviceId] = utcTicks;
        }
    }

    /// <summary>Forgets sightings of devices without a row that are older than <paramref name="before"/> (no offline decision needs them).</summary>
    public void ForgetSightingsBefore(DateTimeOffset before)
    {
        lock (_adding)
        {
            foreach (var (id, ticks) in _unrowed)
                if (ticks < before.UtcTicks) _unrowed.Remove(id);
        }
    }

    /// <inheritdoc />
    public DateTimeOffset? LastSighted(string deviceId)
    {
        long ticks;
        lock (_adding) ticks = _rows.TryGetValue(deviceId, out var row) ? row.HeardUtcTicks : _unrowed.GetValueOrDefault(deviceId, -1);
        return ticks < 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
    }

    /// <summary>
    /// Drops every row (a registry that starts again folds the journal from its beginning onto empty rows) and is not
    /// caught up until it has folded again. The rows' sightings are kept for the rows that replace them: offline
    /// detection must not lose a contact because the read model started over.
    /// </summary>
    internal void Clear()
    {
        _caughtUp = false;
        lock (_adding)
        {
            _folded = true;
            foreach (var row in _rows.Values)
            {
                if (row.HeardUtcTicks >= 0) _unrowed[row.DeviceId] = row.HeardUtcTicks;
                // The new fold starts below every mark, and must not answer until it passes them again.
                if (row.JournaledSequenceNr > 0) _unrowedMarks[row.DeviceId] = row.JournaledSequenceNr;
            }
            _rows.Clear();
        }
    }

    /// <inheritdoc />
    /// <remarks>Marks the row here at once and keeps the mark for the carry to the other nodes.</remarks>
    public void Journaled(string deviceId, long sequenceNr, bool sequenceReset)
    {
        JournaledElsewhere(deviceId, sequenceNr, sequenceReset);
        Action? waiting = null;
        lock (_marksLock)
        {
            if (_pendingMarks is null) return;
            if (_pendingMarks.Count == 0) waiting = _marksWaiting;
            _pendingMarks.Add((deviceId, sequenceNr, sequenceReset));
        }
        waiting?.Invoke();
    }

    /// <summary>Records a journal mark carried from another node's device actor (see <see cref="Journaled"/>).</summary>
    public void JournaledElsewhere(string deviceId, long sequenceNr, bool sequenceReset)
    {
        lock (_adding)
        {
            if (_rows.TryGetValue(deviceId, out var row))
            {
                row.Journaled(sequenceNr, sequenceReset);
                return;
            }
            if (_folded && (!_unrowedMarks.TryGetValue(deviceId, out var known) || known < sequenceNr)) _unrowedMarks[deviceId] = sequenceNr;
        }
    }

    /// <summary>
    /// From now on this node's journal marks are kept for <see cref="TakePendingMarks"/>, and <paramref name="waiting"/>
    /// is called (on the marking actor's thread: it must only enqueue) when the first mark arrives after a take.
    /// </summary>
    public void CarryMarks(Action waiting)
    {
        lock (_marksLock)
        {
            _pendingMarks ??= [];
            _marksWaiting = waiting;
        }
    }

    /// <summary>This node's journal marks since the last call (oldest first); empty without <see cref="CarryMarks"/>.</summary>
    public IReadOnlyList<(string DeviceId, long SequenceNr, bool SequenceReset)> TakePendingMarks()
    {
        lock (_marksLock)
        {
            if (_pendingMarks is not { Count: > 0 } taken) return [];
            _pendingMarks = [];
            return taken;
        }
    }

    /// <summary>Forgets the sequences the fast path answered for <paramref name="deviceId"/> (its credential was rotated).</summary>
    public void ResetFastSequence(string deviceId) => Find(deviceId)?.ResetFastSequence();
}
