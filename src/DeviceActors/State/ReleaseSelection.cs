using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.State;

/// <summary>Where the release a device should run comes from.</summary>
public enum ReleaseSource
{
    /// <summary>Nothing: no rollout target and no current release on the device's channel.</summary>
    None,
    /// <summary>A rollout's assignment (the device is in a running rollout's wave, or no channel information applies).</summary>
    Rollout,
    /// <summary>The current release of the device's channel.</summary>
    Channel,
}

/// <summary>The release a device should run, and why.</summary>
/// <param name="Source">Rollout or channel.</param>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID.</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
/// <param name="Rollout">For <see cref="ReleaseSource.Rollout"/>: the assignment (its rollout meters the download).</param>
public sealed record DesiredRelease(ReleaseSource Source, string Version, long VersionId, string ManifestPath, TargetAssignment? Rollout);

/// <summary>
/// Which release a device should run (pure; <see cref="DeviceStateMachine"/> compares it with what the device reports).
/// A device's rollout target wins while that rollout is moving a channel of the product (or when the check-in carries no
/// channel information, or the channel has no release yet); otherwise the channel's current release applies, so a
/// target left from a finished rollout never pins a device against its channel.
/// </summary>
public static class ReleaseSelection
{
    /// <summary>The release <paramref name="s"/> should run given the channel facts of <paramref name="c"/>; null for none.</summary>
    public static DesiredRelease? Desired(DeviceState s, CheckIn c)
    {
        var channel = ChannelOf(c.Channels, s.Tags);
        if (s.Target is { } t && (c.Channels is null || channel?.Current is null || InRunningRollout(c.Channels, t)
                || RollbackStillApplies(t, channel.Current, c.InstalledVersionId)))
            return new DesiredRelease(ReleaseSource.Rollout, t.Version, t.VersionId, t.ManifestPath, t);
        if (channel?.Current is { } r) return new DesiredRelease(ReleaseSource.Channel, r.Version, r.VersionId, r.ManifestPath, null);
        return null;
    }

    // The device's channel among the check-in's (a loop, not a predicate: every idle check-in asks this).
    private static ChannelTarget? ChannelOf(IReadOnlyList<ChannelTarget>? channels, IReadOnlyList<string> tags)
    {
        if (channels is null) return null;
        var name = ChannelRules.ChannelOf(tags);
        foreach (var ch in channels)
            if (ch.Channel == name) return ch;
        return null;
    }

    // A rollback's target carries the operator's downgrade authorization, and the channel directory learns of the
    // rollback asynchronously. So the target still decides while the channel agrees with it (moved back to the same
    // release: from the channel alone that would be an unauthorized downgrade, refused below the floor) or still names
    // the release the device runs (the rollback is not yet known here: the channel would say "nothing to do"). A channel
    // that has moved on to any other release decides again.
    private static bool RollbackStillApplies(TargetAssignment t, ChannelRelease current, long installedVersionId) =>
        t.Downgrade && (current.VersionId == t.VersionId || (current.VersionId == installedVersionId && installedVersionId > t.VersionId));

    // A rollout moving any channel of the product counts: a device named explicitly by a rollout of another channel
    // still follows the rollout that holds it, so that rollout can finish.
    private static bool InRunningRollout(IReadOnlyList<ChannelTarget> channels, TargetAssignment t)
    {
        foreach (var ch in channels)
            if (ch.Rollouts.Contains(t.RolloutId, StringComparer.Ordinal)) return true;
        return false;
    }

    /// <summary>
    /// True when offering <paramref name="desired"/> to a device that runs <paramref name="installedVersionId"/> moves it
    /// back (a rollback or a channel set to an older release). The one place that decides it: the agent refuses such a
    /// manifest until a signed downgrade authorization comes with it, which is attached where this returns true.
    /// </summary>
    public static bool IsDowngrade(long installedVersionId, DesiredRelease desired) =>
        installedVersionId > 0 && desired.VersionId < installedVersionId;
}
