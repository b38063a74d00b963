using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Channels;

namespace Orchestrator.Node.Tests.Channels;

/// <summary>The channel directory's pure decide/apply: operator sets, rollouts holding, completing, rolling back and aborting.</summary>
public sealed class ChannelStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private static ChannelRelease R(long v) => new($"{v}.0", v, $"manifests/acme/{v}.0.json");
    private readonly ChannelState _state = new();
    private long _seq;

    private ChannelRejected? Set(long v, string channel = "stable", bool seed = false)
    {
        var (events, rejected) = _state.DecideSet(new SetChannelRelease("acme", channel, R(v), seed ? "store" : "alice", "why", seed), T0);
        foreach (var e in events) _state.Apply(e, ++_seq);
        return rejected;
    }

    private int Sync(string rollout, long target, RolloutStatus status, string channel = "stable")
    {
        var events = _state.DecideSync(new SyncRolloutChannel(rollout, "acme", channel, R(target), status), T0);
        foreach (var e in events) _state.Apply(e, ++_seq);
        return events.Count;
    }

    private ChannelView Stable => _state.Find("acme", "stable")!;

    [Fact]
    public void An_operator_set_creates_the_channel_and_a_seed_never_overrides_it()
    {
        Assert.Null(Set(1));
        Assert.Equal(R(1), Stable.Current);
        Assert.Null(Set(2, seed: true));
        Assert.Equal(R(1), Stable.Current);
        Assert.Null(Set(2));
        Assert.Equal([R(1), R(2)], Stable.History.Select(h => h.Release));
        Assert.Equal(2, _state.Revision);
        Assert.Null(Set(2)); // the same release again: nothing persisted
        Assert.Equal(2, _state.Revision);
    }

    [Fact]
    public void Invalid_names_and_releases_are_refused_and_change_nothing()
    {
        Assert.Equal("invalid_channel", _state.DecideSet(new SetChannelRelease("acme", "Bad Name", R(1), "a", "r"), T0).Rejected!.Code);
        Assert.Equal("invalid_channel", _state.DecideSet(new SetChannelRelease("acme", "stable", R(0), "a", "r"), T0).Rejected!.Code);
        Assert.Empty(_state.View().Channels);
    }

    [Fact]
    public void A_running_rollout_holds_the_channel_and_its_completion_moves_it_to_the_target()
    {
        Set(1);
        Assert.Equal(1, Sync("ro-1", 2, RolloutStatus.Running));
        Assert.Equal(0, Sync("ro-1", 2, RolloutStatus.Paused)); // still held: idempotent
        Assert.Equal(R(1), Stable.Current);
        Assert.Equal([("ro-1", R(2), R(1))], Stable.Rollouts.Select(h => (h.RolloutId, h.Target, h.Previous)));
        Assert.Equal("channel_in_rollout", Set(3)!.Code);
        Assert.Equal(R(1), Stable.Current);

        Assert.Equal(1, Sync("ro-1", 2, RolloutStatus.Completed));
        Assert.Equal(R(2), Stable.Current);
        Assert.Empty(Stable.Rollouts);
        Assert.Equal("rollout ro-1 completed", Stable.History[^1].Cause);
        Assert.Equal(0, Sync("ro-1", 2, RolloutStatus.Completed)); // re-sent after a restart
        Assert.Equal(0, Sync("ro-1", 2, RolloutStatus.Running));   // retry-failed after completion
    }

    [Fact]
    public void A_rollback_after_completion_moves_the_channel_back_and_one_of_a_running_rollout_releases_its_hold()
    {
        Set(1);
        Sync("ro-1", 2, RolloutStatus.Running);
        Sync("ro-1", 2, RolloutStatus.Completed);
        Assert.Equal(1, Sync("ro-1", 2, RolloutStatus.RolledBack));
        Assert.Equal(R(1), Stable.Current);
        Assert.Equal("rollout ro-1 rolled back", Stable.History[^1].Cause);
        Assert.Equal(0, Sync("ro-1", 2, RolloutStatus.RolledBack));

        Sync("ro-2", 3, RolloutStatus.Running);
        Assert.Equal(1, Sync("ro-2", 3, RolloutStatus.RolledBack));
        Assert.Equal(R(1), Stable.Current); // it never moved
        Assert.Empty(Stable.Rollouts);
    }

    [Fact]
    public void A_rollback_leaves_a_channel_that_moved_on_alone()
    {
        Set(1);
        Sync("ro-1", 2, RolloutStatus.Running);
        Sync("ro-1", 2, RolloutStatus.Completed);
        Set(3);
        Sync("ro-1", 2, RolloutStatus.RolledBack);
        Assert.Equal(R(3), Stable.Current);
    }

    [Fact]
    public void An_aborted_rollout_keeps_its_devices_until_the_channel_is_set_again()
    {
        Set(1);
        Sync("ro-1", 2, RolloutStatus.Running);
        Assert.Equal(1, Sync("ro-1", 2, RolloutStatus.Aborted));
        Assert.Equal(R(1), Stable.Current);
        Assert.Equal(["ro-1"], Stable.Rollouts.Select(h => h.RolloutId)); // devices holding its target keep it
        Assert.Empty(ChannelState.ActiveRollouts(Stable));
        Assert.Null(Set(4)); // allowed: only an aborted rollout holds it, and the set releases its devices
        Assert.Empty(Stable.Rollouts);
    }

    [Fact]
    public void A_completion_the_directory_never_saw_start_only_moves_the_channel_forward()
    {
        Set(5);
        Sync("old", 3, RolloutStatus.Completed);
        Assert.Equal(R(5), Stable.Current);
        Sync("newer", 6, RolloutStatus.Completed);
        Assert.Equal(R(6), Stable.Current);
        Sync("first", 1, RolloutStatus.Completed, channel: "beta");
        Assert.Equal(R(1), _state.Find("acme", "beta")!.Current);
    }

    [Fact]
    public void History_is_bounded()
    {
        for (var v = 1; v <= ChannelView.MaxHistory + 10; v++) Set(v);
        Assert.Equal(ChannelView.MaxHistory, Stable.History.Count);
        Assert.Equal(R(ChannelView.MaxHistory + 10), Stable.History[^1].Release);
    }
}
