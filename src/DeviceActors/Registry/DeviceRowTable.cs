using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Registry;

/// <summary>
/// The registry's rows, shared with the node's gateway so it can answer an idle device's check-in without the device's
/// actor (the idle fast path, <see cref="IdleCheckIn"/>). The <see cref="DeviceRegistry"/> is the only writer; it reads
/// its rows on its own thread, and adds rows under a lock that gateway lookups take too (a dictionary must not be read
/// while it grows). The rows lag the journal (by the registry's query interval, longer while it catches up after a
/// start); the fast path only ever answers "nothing to do", so a lagging row can delay an order (a rollout, a channel
/// move) while it lags, never give one.
/// </summary>
public sealed class DeviceRowTable
{
    private readonly Dictionary<string, DeviceRow> _rows = new(StringComparer.Ordinal);
    private readonly Lock _adding = new();

    /// <summary>Rows by device id; read only on the registry's thread (its only writer).</summary>
    internal Dictionary<string, DeviceRow> Rows => _rows;

    /// <summary>The row of <paramref name="id"/>, added when missing (registry thread only).</summary>
    internal DeviceRow GetOrAdd(ReadOnlySpan<char> id)
    {
        // Looked up by span: one id string per device (the key), not one per event.
        if (_rows.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(id, out var row)) return row;
        var key = DeviceState.Initial(id.ToString()).DeviceId; // validates the id as the actors do
        row = new DeviceRow(key);
        lock (_adding) _rows[key] = row;
        return row;
    }

    private DeviceRow? Find(string deviceId)
    {
        lock (_adding) return _rows.GetValueOrDefault(deviceId);
    }

    /// <summary>
    /// The fast path for <paramref name="c"/>: <c>Answer</c> is the actor's "nothing to do" when the row proves the
    /// check-in changes nothing (<see cref="IdleCheckIn.Answer"/>, and the actor heard the device less than
    /// <paramref name="actorHearingWindow"/> ago); <c>Refused</c> is the replay refusal when <paramref name="c"/> repeats
    /// a request the fast path already answered (the actor never saw it, so it could not refuse it). Both null: ask the actor.
    /// </summary>
    public (CheckInDecision? Answer, DeviceCommandRejected? Refused) TryAnswer(CheckIn c, TimeSpan lastSeenPersistInterval, TimeSpan actorHearingWindow)
    {
        if (Find(c.DeviceId) is not { } row) return (null, null);
        if (DeviceRequestSequence.RefuseReplay(c, row.FastSequence) is { } replayed) return (null, replayed);
        if (row.AnswerIdle(c, lastSeenPersistInterval, actorHearingWindow) is not { } answer) return (null, null);
        if (!row.TryClaim(c)) return (null, DeviceRequestSequence.RefuseReplay(c, row.FastSequence));
        return (answer, null);
    }

    /// <summary>Records that the actor of <paramref name="deviceId"/> answered its check-in <paramref name="sequence"/> at <paramref name="at"/>.</summary>
    public void AnsweredByActor(string deviceId, DateTimeOffset at, long sequence) => Find(deviceId)?.AnsweredByActor(at, sequence);

    /// <summary>Drops every row (a registry that starts again folds the journal from its beginning onto empty rows).</summary>
    internal void Clear()
    {
        lock (_adding) _rows.Clear();
    }

    /// <summary>Forgets the sequences the fast path answered for <paramref name="deviceId"/> (its credential was rotated).</summary>
    public void ResetFastSequence(string deviceId) => Find(deviceId)?.ResetFastSequence();
}
