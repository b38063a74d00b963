using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.State;

/// <summary>
/// The idle fast path's rule (pure): when a check-in provably changes nothing, the answer "nothing to do" that the
/// device's actor would give, computed from a state the gateway holds without the actor. It answers only when
/// <see cref="DeviceStateMachine.Decide"/> on that same state would answer <see cref="UpdateAction.None"/> and persist no
/// event; on any doubt it returns null and the check-in goes to the actor. It never orders work: only the actor does.
/// </summary>
public static class IdleCheckIn
{
    /// <summary>
    /// The actor's answer to <paramref name="c"/> when <paramref name="s"/> proves the check-in is a heartbeat (nothing
    /// would be journaled and the answer is "nothing to do"); null otherwise.
    /// </summary>
    /// <param name="s">The device's state as the gateway knows it (the registry row's fold).</param>
    /// <param name="c">The check-in, built exactly as it would be sent to the actor (channels included).</param>
    /// <param name="lastSeenPersistInterval">The actors' <see cref="DeviceActorSettings.LastSeenPersistInterval"/>: a check-in
    /// at least this long after the persisted last-seen is journaled, so it must go to the actor.</param>
    public static CheckInDecision? Answer(DeviceState s, CheckIn c, TimeSpan lastSeenPersistInterval)
    {
        if (lastSeenPersistInterval <= TimeSpan.Zero || c.DeviceId != s.DeviceId) return null;
        // The actor refuses a replay; the gateway refuses it before asking this (DeviceRowTable).
        if (c.RequestSequence > 0 && c.RequestSequence <= s.LastRequestSequence) return null;
        // Settled with nothing in flight; Offline would journal the device's return, Completed the move to Idle.
        if (s.Status != DeviceStatus.Idle || s.Work is not null || s.Progress is not null || s.FailedAttempts != 0 || s.LastFailure is not null
            || s.Decommissioned is not null || s.UpdaterLost is not null || s.StatusBeforeOffline is not null)
            return null;
        if (s.Product is null || s.Product != c.Product || (s.Target is not null && s.Target.Product != c.Product)) return null;
        // What the device reports is what the journal holds: same release, same files, same agent, same flags.
        if (c.InstalledVersionId == 0 || c.InstalledVersionId != s.InstalledVersionId || s.FloorVersionId < c.InstalledVersionId) return null;
        if (c.NeedsRepair || c.DifferingFiles.Count != 0 || !string.Equals(c.InventoryDigest, s.InventoryDigest, StringComparison.Ordinal)) return null;
        if (c.AgentVersion is not null && !string.Equals(c.AgentVersion, s.AgentVersion, StringComparison.Ordinal)) return null;
        if (c.Stale != s.Stale || (c.Attributes is not null && !DeviceAttributeRules.SameAs(c.Attributes, s.ReportedAttributes))) return null;
        // The actor journals last-seen once the persisted one is this old; until then a heartbeat writes nothing.
        if (s.LastSeen is not { } seen || c.Timestamp - seen >= lastSeenPersistInterval) return null;
        // The release it should run (rollout target or channel) is the one it runs.
        if (ReleaseSelection.Desired(s, c) is { } desired && desired.VersionId != c.InstalledVersionId) return null;
        return new CheckInDecision(s.DeviceId, UpdateAction.None, null, null, null, [], s.Status, FloorVersionId: s.FloorVersionId, Product: s.Product);
    }
}
