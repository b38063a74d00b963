namespace Orchestrator.DeviceActors;

/// <summary>
/// Where a device actor marks each event it journals, before it replies to the command that caused it. The node's
/// registry rows lag the journal; the idle fast path must not answer a device from a row that has not folded an event
/// its actor already acknowledged (an assignment, a cancel, a decommission, a product or tag change, a sequence reset),
/// so a row whose fold is below its device's mark is left to the actor. The mark is synchronous on the actor's node and
/// carried to the other nodes at once.
/// </summary>
public interface IDeviceJournalMarks
{
    /// <summary>The actor of <paramref name="deviceId"/> journaled its events up to <paramref name="sequenceNr"/>.</summary>
    /// <param name="deviceId">The device.</param>
    /// <param name="sequenceNr">The highest sequence number journaled.</param>
    /// <param name="sequenceReset">Among the events is a request sequence reset (its credential was rotated): the
    /// sequences answered without the actor no longer count.</param>
    void Journaled(string deviceId, long sequenceNr, bool sequenceReset);
}
