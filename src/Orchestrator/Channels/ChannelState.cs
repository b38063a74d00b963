using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Channels;

/// <summary>
/// The channel directory's state as pure functions: <c>Decide*</c> turn a command into events (or a refusal) without
/// changing anything, <see cref="Apply"/> folds an event in. Recovery and live use run the same Apply.
/// </summary>
public sealed class ChannelState
{
    private readonly SortedDictionary<(string Product, string Channel), ChannelView> _channels = new();

    /// <summary>Revision (sequence number of the last applied event).</summary>
    public long Revision { get; private set; }

    /// <summary>A channel, or null.</summary>
    public ChannelView? Find(string product, string channel) => _channels.GetValueOrDefault((product, channel));

    /// <summary>The directory (or one product's part of it).</summary>
    public ChannelDirectoryView View(string? product = null) =>
        new(_channels.Values.Where(c => product is null || c.Product == product).ToList(), Revision);

    /// <summary>The snapshot payload.</summary>
    public ChannelDirectorySnapshot ToSnapshot() => new(_channels.Values.ToList());

    /// <summary>Restores a snapshot taken at <paramref name="revision"/>.</summary>
    public static ChannelState FromSnapshot(ChannelDirectorySnapshot snapshot, long revision)
    {
        var s = new ChannelState { Revision = revision };
        foreach (var c in snapshot.Channels) s._channels[(c.Product, c.Channel)] = c;
        return s;
    }

    /// <summary>Events for an operator's (or a seed's) <see cref="SetChannelRelease"/>, or a refusal.</summary>
    public (IReadOnlyList<IChannelEvent> Events, ChannelRejected? Rejected) DecideSet(SetChannelRelease c, DateTimeOffset now)
    {
        if ((ChannelRules.Problem("product", c.Product) ?? ChannelRules.Problem("channel", c.Channel)) is { } bad)
            return ([], new ChannelRejected("invalid_channel", bad));
        if (c.Release.VersionId <= 0 || string.IsNullOrWhiteSpace(c.Release.Version) || string.IsNullOrWhiteSpace(c.Release.ManifestPath))
            return ([], new ChannelRejected("invalid_channel", "release: give a published version (version, versionId >= 1, manifestPath)."));
        var existing = Find(c.Product, c.Channel);
        if (existing is not null && c.OnlyIfAbsent) return ([], null);
        if (existing is not null && ActiveRollouts(existing).FirstOrDefault() is { } active)
            return ([], new ChannelRejected("channel_in_rollout",
                $"Channel {c.Product}/{c.Channel} is being moved by rollout '{active.RolloutId}' (to {active.Target.Version}); " +
                "wait for it to complete, or abort or roll it back first."));
        if (existing?.Current == c.Release && existing.Rollouts.Count == 0) return ([], null);
        return ([new ChannelReleaseSet(c.Product, c.Channel, c.Release, c.Operator, c.Reason, now)], null);
    }

    /// <summary>Events for a rollout's <see cref="SyncRolloutChannel"/> (none when the directory already knows that status).</summary>
    public IReadOnlyList<IChannelEvent> DecideSync(SyncRolloutChannel c, DateTimeOffset now)
    {
        var ch = Find(c.Product, c.Channel);
        var held = ch?.Rollouts.Any(h => h.RolloutId == c.RolloutId) == true;
        var finished = ch?.Finished.FirstOrDefault(f => f.RolloutId == c.RolloutId);
        switch (c.Status)
        {
            case RolloutStatus.Created or RolloutStatus.Running or RolloutStatus.Paused:
                // A completed rollout that retries its failed devices runs again, but the channel already points at its target.
                return held || finished is not null ? [] : [new ChannelRolloutStarted(c.Product, c.Channel, c.RolloutId, c.Target, now)];
            case RolloutStatus.Completed:
                return finished is not null ? [] : [new ChannelRolloutCompleted(c.Product, c.Channel, c.RolloutId, c.Target, now)];
            case RolloutStatus.Aborted:
                return finished is not null ? [] : [new ChannelRolloutAborted(c.Product, c.Channel, c.RolloutId, c.Target, now)];
            default:
                return finished?.Status == RolloutStatus.RolledBack ? [] : [new ChannelRolloutRolledBack(c.Product, c.Channel, c.RolloutId, c.Target, now)];
        }
    }

    /// <summary>Holds of rollouts that have not finished (an aborted rollout's hold stays until the channel is set).</summary>
    public static IEnumerable<ChannelHold> ActiveRollouts(ChannelView c) =>
        c.Rollouts.Where(h => c.Finished.All(f => f.RolloutId != h.RolloutId));

    /// <summary>Folds one event in. Total: an event that does not fit changes nothing but the revision.</summary>
    public void Apply(IChannelEvent e, long sequenceNr)
    {
        Revision = sequenceNr;
        var c = Find(e.Product, e.Channel) ?? new ChannelView(e.Product, e.Channel, null, [], [], [], e.At);
        var hold = e is ChannelRolloutStarted or ChannelReleaseSet ? null : c.Rollouts.FirstOrDefault(h => h.RolloutId == RolloutOf(e));
        var finished = c.Finished.FirstOrDefault(f => f.RolloutId == RolloutOf(e));
        c = e switch
        {
            ChannelReleaseSet s => Move(c with { Rollouts = [] }, s.Release, $"set by {s.Operator}: {s.Reason}", s.At),
            ChannelRolloutStarted s => c with { Rollouts = [.. c.Rollouts, new ChannelHold(s.RolloutId, s.Target, c.Current)] },
            ChannelRolloutCompleted done => Completed(c, done, hold),
            ChannelRolloutAborted a => c with
            {
                Finished = [.. c.Finished, new FinishedRollout(a.RolloutId, RolloutStatus.Aborted, a.Target, hold?.Previous ?? c.Current)],
            },
            ChannelRolloutRolledBack r => RolledBack(c, r, hold, finished),
            _ => c,
        };
        _channels[(e.Product, e.Channel)] = c with { UpdatedAt = e.At };
    }

    private static string? RolloutOf(IChannelEvent e) => e switch
    {
        ChannelRolloutStarted x => x.RolloutId,
        ChannelRolloutCompleted x => x.RolloutId,
        ChannelRolloutAborted x => x.RolloutId,
        ChannelRolloutRolledBack x => x.RolloutId,
        _ => null,
    };

    private static ChannelView Completed(ChannelView c, ChannelRolloutCompleted e, ChannelHold? hold)
    {
        var previous = hold?.Previous ?? c.Current;
        var rest = c with
        {
            Rollouts = c.Rollouts.Where(h => h.RolloutId != e.RolloutId).ToList(),
            Finished = [.. c.Finished, new FinishedRollout(e.RolloutId, RolloutStatus.Completed, e.Target, previous)],
        };
        // A rollout the directory never saw start (it finished before this node knew channels, or while the directory
        // was unreachable) only moves the channel forward, so re-sent completions of old rollouts cannot move it back.
        var moves = hold is not null || c.Current is null || e.Target.VersionId > c.Current.VersionId;
        return moves ? Move(rest, e.Target, $"rollout {e.RolloutId} completed", e.At) : rest;
    }

    private static ChannelView RolledBack(ChannelView c, ChannelRolloutRolledBack e, ChannelHold? hold, FinishedRollout? finished)
    {
        var previous = hold?.Previous ?? finished?.Previous;
        var rest = c with
        {
            Rollouts = c.Rollouts.Where(h => h.RolloutId != e.RolloutId).ToList(),
            Finished = [.. c.Finished.Where(f => f.RolloutId != e.RolloutId),
                new FinishedRollout(e.RolloutId, RolloutStatus.RolledBack, e.Target, previous)],
        };
        // Only a channel that the rollout moved goes back; one a later rollout or an operator moved on stays where it is.
        var moved = (hold is not null || finished is not null) && c.Current?.VersionId == e.Target.VersionId;
        return moved ? Move(rest, previous, $"rollout {e.RolloutId} rolled back", e.At) : rest;
    }

    private static ChannelView Move(ChannelView c, ChannelRelease? release, string cause, DateTimeOffset at)
    {
        var history = c.History.Append(new ChannelChange(release, cause, at)).ToList();
        if (history.Count > ChannelView.MaxHistory) history.RemoveRange(0, history.Count - ChannelView.MaxHistory);
        return c with { Current = release, History = history };
    }
}
