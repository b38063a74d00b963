using Akka.Actor;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Tests.Rollouts;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests.Channels;

/// <summary>The channel directory singleton on a real SQLite journal: it survives a crash of its actor system, from events and snapshots.</summary>
public sealed class ChannelDirectoryRecoveryTests(ITestOutputHelper output)
{
    private static ChannelRelease R(long v) => new($"{v}.0", v, $"manifests/acme/{v}.0.json");

    private static async Task<T> Ask<T>(RolloutHarness h, object message) =>
        Assert.IsType<T>(h.RoundTrip(await h.Channels.Ask<object>(h.RoundTrip(message), RolloutHarness.Wait)));

    [Fact]
    public async Task Channels_recover_after_a_crash_and_resent_rollout_statuses_change_nothing()
    {
        // Snapshot every 3 events: recovery goes through a snapshot plus the events after it.
        await using var h = await RolloutHarness.StartAsync(output,
            channels: ChannelSettings.Default with { SnapshotEvery = 3, RefreshInterval = TimeSpan.FromMilliseconds(200) });
        await Ask<ChannelView>(h, new SetChannelRelease("acme", "stable", R(1), "alice", "first"));
        await Ask<ChannelView>(h, new SetChannelRelease("acme", "beta", R(2), "alice", "try"));
        await Ask<RolloutChannelSynced>(h, new SyncRolloutChannel("ro-1", "acme", "stable", R(2), RolloutStatus.Running));
        await Ask<RolloutChannelSynced>(h, new SyncRolloutChannel("ro-1", "acme", "stable", R(2), RolloutStatus.Completed));
        await Ask<RolloutChannelSynced>(h, new SyncRolloutChannel("ro-2", "acme", "stable", R(3), RolloutStatus.Running));
        var before = await Ask<ChannelDirectoryView>(h, new GetChannels(null));
        Assert.Equal(5, before.Revision);

        await h.RestartAsync();

        var after = await Ask<ChannelDirectoryView>(h, new GetChannels(null));
        Assert.Equal(before.Revision, after.Revision);
        Assert.Equal(before.Channels.Count, after.Channels.Count);
        for (var i = 0; i < before.Channels.Count; i++)
        {
            Assert.Equal(before.Channels[i].Current, after.Channels[i].Current);
            Assert.Equal(before.Channels[i].Rollouts, after.Channels[i].Rollouts);
            Assert.Equal(before.Channels[i].Finished, after.Channels[i].Finished);
            Assert.Equal(before.Channels[i].History, after.Channels[i].History);
        }
        var stable = after.Channels.Single(c => c.Channel == "stable");
        Assert.Equal(R(2), stable.Current);
        Assert.Equal(["ro-2"], stable.Rollouts.Select(r => r.RolloutId));

        // A rollout re-sends its status after recovery: idempotent, nothing persisted.
        await Ask<RolloutChannelSynced>(h, new SyncRolloutChannel("ro-1", "acme", "stable", R(2), RolloutStatus.Completed));
        Assert.Equal(5, (await Ask<ChannelDirectoryView>(h, new GetChannels("acme"))).Revision);
        // Refused while ro-2 holds the channel, and still nothing persisted.
        Assert.Equal("channel_in_rollout", (await Ask<ChannelRejected>(h, new SetChannelRelease("acme", "stable", R(9), "bob", "x"))).Code);
        Assert.Equal(5, (await Ask<ChannelDirectoryView>(h, new GetChannels("acme"))).Revision);
    }

    [Fact]
    public async Task A_rollout_holds_its_channel_moves_it_on_completion_and_back_on_rollback_across_a_crash()
    {
        await using var h = await RolloutHarness.StartAsync(output, channels: ChannelSettings.Default);
        var v1 = new ChannelRelease(RolloutHarness.V1.Version, RolloutHarness.V1.VersionId, RolloutHarness.V1.ManifestPath);
        var v2 = new ChannelRelease(RolloutHarness.V2.Version, RolloutHarness.V2.VersionId, RolloutHarness.V2.ManifestPath);
        await Ask<ChannelView>(h, new SetChannelRelease("acme", "stable", v1, "alice", "first"));
        var ids = new[] { "c-1", "c-2", "c-3" };
        await h.Register(ids);
        await h.Register(["beta-1"], "channel:beta");
        await h.AwaitRegistry(4);

        var created = await h.Create(RolloutHarness.Spec("ro-ch", RolloutHarness.Tags()) with
        {
            Selector = new DeviceSelector([], [.. ids, "beta-1"], []),
        });
        // beta-1 is of another channel: not selected.
        Assert.Equal(3, created.Waves.Sum(w => w.Total));
        ChannelView Stable(ChannelDirectoryView v) => v.Channels.Single(c => c.Channel == "stable");
        await Until(h, v => Stable(v).Rollouts.Any(r => r.RolloutId == "ro-ch"));
        Assert.Equal(v1, Stable(await Ask<ChannelDirectoryView>(h, new GetChannels("acme"))).Current);

        var fleet = new Fleet(h, ids);
        var deadline = DateTime.UtcNow + RolloutHarness.Wait;
        while ((await h.Show("ro-ch")).Status != RolloutStatus.Completed)
        {
            Assert.True(DateTime.UtcNow < deadline, "ro-ch did not complete");
            await fleet.Round();
            await Task.Delay(100);
        }
        Assert.All(ids, id => Assert.Equal(2, fleet.Installed(id)));
        await Until(h, v => Stable(v).Current == v2 && Stable(v).Rollouts.Count == 0);

        await h.RestartAsync();
        Assert.Equal(v2, Stable(await Ask<ChannelDirectoryView>(h, new GetChannels("acme"))).Current);
        await h.Ask<RolloutView>(new RollbackRollout("ro-ch", "alice", "bad build", [RolloutHarness.V1]));
        var back = await Until(h, v => Stable(v).Current == v1);
        Assert.Equal("rollout ro-ch rolled back", Stable(back).History[^1].Cause);
    }

    private static async Task<ChannelDirectoryView> Until(RolloutHarness h, Func<ChannelDirectoryView, bool> done)
    {
        var deadline = DateTime.UtcNow + RolloutHarness.Wait;
        while (true)
        {
            var v = await Ask<ChannelDirectoryView>(h, new GetChannels("acme"));
            if (done(v)) return v;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("channel directory never reached the expected state: " +
                    string.Join("; ", v.Channels.Select(c => $"{c.Channel}={c.Current?.Version} held by {string.Join(",", c.Rollouts.Select(r => r.RolloutId))}")));
            await Task.Delay(100);
        }
    }
}
