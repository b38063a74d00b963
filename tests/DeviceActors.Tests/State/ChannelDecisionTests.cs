using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>The check-in decision against a channel's current release and a rollout's target (pure state machine).</summary>
public sealed class ChannelDecisionTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly Random _random = new(7);
    private DeviceState _state = DeviceState.Initial(Id);

    private static ChannelRelease R(long v) => new($"{v}.0", v, $"manifests/acme/{v}.json");

    private static ChannelTarget Ch(string name, long? current, params string[] rollouts) => new(name, current is { } v ? R(v) : null, rollouts);

    private IOrchestratorMessage Run(IDeviceCommand c)
    {
        var outcome = DeviceStateMachine.Decide(_state, c, DeviceActorSettings.Default, _random, T0);
        foreach (var e in outcome.Events) _state = DeviceStateMachine.Apply(_state, e, _state.EventCount + 1);
        return outcome.Reply(_state);
    }

    private CheckInDecision CheckIn(long installed, IReadOnlyList<ChannelTarget>? channels, bool damaged = false) =>
        Assert.IsType<CheckInDecision>(Run(new CheckIn(Id, "acme", installed, damaged ? "d-bad" : "d-ok", installed == 0 ? null : "d-ok",
            installed == 0 ? null : $"{installed}.0", installed == 0 ? null : $"manifests/acme/{installed}.json", damaged ? ["bin/app"] : [], "1.0", T0,
            Channels: channels)));

    [Fact]
    public void A_new_device_is_told_to_install_its_channels_release()
    {
        var d = CheckIn(0, [Ch("stable", 3)]);
        Assert.Equal((UpdateAction.Upgrade, 3L, "manifests/acme/3.json", "channel"), (d.Action, d.TargetVersionId, d.ManifestPath, d.Source));
        Assert.Null(d.RolloutId);
        Assert.False(d.Downgrade);
        Assert.Equal(DeviceStatus.UpgradeAssigned, _state.Status);
        Assert.Equal(3, _state.Work!.VersionId);
    }

    [Fact]
    public void Equal_and_intact_is_nothing_and_equal_with_differing_files_is_a_repair()
    {
        Assert.Equal(UpdateAction.None, CheckIn(3, [Ch("stable", 3)]).Action);
        var repair = CheckIn(3, [Ch("stable", 3)], damaged: true);
        Assert.Equal((UpdateAction.Repair, 3L), (repair.Action, repair.TargetVersionId));
        Assert.Equal(["bin/app"], repair.RepairFiles);
    }

    [Fact]
    public void A_device_follows_the_channel_named_by_its_tag_and_stable_without_one()
    {
        var channels = new[] { Ch("stable", 3), Ch("beta", 4) };
        Assert.Equal(3, CheckIn(0, channels).TargetVersionId);
        Run(new RegisterDevice(Id, "acme", ["eu", "channel:beta"], T0));
        Assert.Equal("beta", _state.Channel);
        Assert.Equal(4, CheckIn(0, channels).TargetVersionId);
        Run(new RegisterDevice(Id, "acme", ["channel:nightly"], T0));
        Assert.Equal(UpdateAction.None, CheckIn(0, channels).Action); // a channel without a release offers nothing
    }

    [Fact]
    public void A_device_in_a_running_rollout_follows_the_rollout_and_the_others_the_channel()
    {
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "ro-1", 1000));
        var d = CheckIn(3, [Ch("stable", 3, "ro-1")]);
        Assert.Equal((UpdateAction.Upgrade, 4L, "ro-1", 1000L, "rollout"), (d.Action, d.TargetVersionId, d.RolloutId, d.BandwidthBytesPerSecond, d.Source));
    }

    [Fact]
    public void A_target_of_a_finished_rollout_no_longer_pins_the_device_against_its_channel()
    {
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "ro-1"));
        Run(new ReportCompletion(Id, 4, "d-ok", T0)); // refused (no work yet); the device installs via check-in below
        CheckIn(3, [Ch("stable", 3, "ro-1")]);
        Run(new ReportCompletion(Id, 4, "d-ok", T0));
        Assert.Equal(4, _state.InstalledVersionId);
        // ro-1 finished and the channel moved on to 5: the device follows the channel, not its old target.
        var d = CheckIn(4, [Ch("stable", 5)]);
        Assert.Equal((UpdateAction.Upgrade, 5L, "channel"), (d.Action, d.TargetVersionId, d.Source));
        Assert.NotNull(_state.Target); // the old assignment is still recorded; it just does not decide
    }

    [Fact]
    public void A_channel_moved_back_is_offered_as_a_downgrade()
    {
        var d = CheckIn(5, [Ch("stable", 4)]);
        Assert.Equal((UpdateAction.Upgrade, 4L, true), (d.Action, d.TargetVersionId, d.Downgrade));
        Assert.True(ReleaseSelection.IsDowngrade(5, new DesiredRelease(ReleaseSource.Channel, "4.0", 4, "m", null)));
        Assert.False(ReleaseSelection.IsDowngrade(0, new DesiredRelease(ReleaseSource.Channel, "4.0", 4, "m", null)));
        Assert.False(ReleaseSelection.IsDowngrade(3, new DesiredRelease(ReleaseSource.Channel, "4.0", 4, "m", null)));
    }

    [Fact]
    public void A_rollback_target_keeps_its_downgrade_authorization_once_the_channel_is_moved_back_to_it()
    {
        Assert.Equal(UpdateAction.None, CheckIn(5, [Ch("stable", 5)]).Action);
        Assert.Equal(5, _state.FloorVersionId);
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "ro-1", AuthorizeDowngrade: true));
        // The rollback already moved the channel back to 4 (no hold of ro-1 left) when the device checks in.
        var d = CheckIn(5, [Ch("stable", 4)]);
        Assert.Equal((UpdateAction.Upgrade, 4L, "ro-1", true), (d.Action, d.TargetVersionId, d.RolloutId, d.AuthorizedDowngrade));
        // A node whose channel cache does not know of the rollback yet (still the release the device runs) does not
        // answer "nothing to do" either.
        var stale = CheckIn(5, [Ch("stable", 5)]);
        Assert.Equal((UpdateAction.Upgrade, 4L, "ro-1", true), (stale.Action, stale.TargetVersionId, stale.RolloutId, stale.AuthorizedDowngrade));
        // Once the channel moves on, the old rollback target no longer decides.
        var later = CheckIn(5, [Ch("stable", 6)]);
        Assert.Equal((6L, "channel"), (later.TargetVersionId, later.Source));
    }

    [Fact]
    public void Without_channel_information_or_a_channel_release_the_rollout_target_decides_as_before()
    {
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "ops"));
        Assert.Equal(4, CheckIn(3, null).TargetVersionId);
        Assert.Equal(4, CheckIn(3, [Ch("stable", null)]).TargetVersionId);
        Assert.Equal(4, CheckIn(3, []).TargetVersionId);
        Assert.Equal(UpdateAction.None, new ChannelDecisionTests().CheckIn(3, null).Action);
    }

    [Fact]
    public void A_rollout_of_another_channel_that_holds_the_device_still_decides()
    {
        Run(new RegisterDevice(Id, "acme", ["channel:beta"], T0));
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "ro-stable"));
        Assert.Equal(4, CheckIn(3, [Ch("stable", 3, "ro-stable"), Ch("beta", 3)]).TargetVersionId);
    }
}
