using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>Issue 14 in the pure state machine: the rollback floor, authorized downgrades, product binding, staleness.</summary>
public sealed class DeviceTrustRulesTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly Random _random = new(42);
    private DeviceState _state = DeviceState.Initial(Id);

    private IOrchestratorMessage Run(IDeviceCommand c)
    {
        var outcome = DeviceStateMachine.Decide(_state, c, DeviceActorSettings.Default, _random, T0);
        foreach (var e in outcome.Events) _state = DeviceStateMachine.Apply(_state, e, _state.EventCount + 1);
        return outcome.Reply(_state);
    }

    private static CheckIn Clean(long version, string product = "acme", bool stale = false) =>
        new(Id, product, version, "d", version == 0 ? null : "d", version == 0 ? null : $"{version}.0", version == 0 ? null : $"manifests/acme/{version}.json",
            [], "1.0", T0, Stale: stale);

    private static AssignTarget Target(long version, bool downgrade = false) =>
        new(Id, "acme", $"{version}.0", version, $"manifests/acme/{version}.json", "r1", 0, downgrade);

    private void Install(long version)
    {
        Run(Target(version));
        Run(Clean(version - 1));
        Run(new ReportCompletion(Id, version, "d", T0));
    }

    [Fact]
    public void The_floor_is_the_highest_installed_version_and_a_lower_report_does_not_lower_it()
    {
        Run(Clean(3));
        Install(4);
        Assert.Equal(4, _state.FloorVersionId);
        var d = Assert.IsType<CheckInDecision>(Run(Clean(1))); // e.g. the device lost its record, or an old copy was put back
        Assert.Equal(4, d.FloorVersionId);
        Assert.Equal(4, _state.FloorVersionId);
    }

    [Fact]
    public void An_assignment_below_the_floor_needs_a_downgrade_authorization_and_the_floor_drops_only_when_it_completed()
    {
        Run(Clean(3));
        Install(4);
        var refused = Assert.IsType<DeviceCommandRejected>(Run(Target(3)));
        Assert.Equal("below_floor", refused.Code);
        Assert.Contains("its floor is version ID 4", refused.Message);
        Assert.Equal(4, _state.Target!.VersionId); // nothing changed

        Assert.IsType<DeviceCommandAccepted>(Run(Target(3, downgrade: true)));
        var d = Assert.IsType<CheckInDecision>(Run(Clean(4)));
        Assert.Equal(UpdateAction.Upgrade, d.Action);
        Assert.True(d.AuthorizedDowngrade);
        Assert.Equal(4, d.FloorVersionId);
        Assert.Equal("r1", d.RolloutId);
        Assert.Equal(4, _state.FloorVersionId);
        Run(new ReportCompletion(Id, 3, "d", T0));
        Assert.Equal(3, _state.FloorVersionId);
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3))).Action);
        Assert.Equal(DeviceStatus.Idle, _state.Status);
    }

    [Fact]
    public void A_check_in_claiming_another_product_is_refused_and_only_an_operator_moves_the_device()
    {
        Run(new RegisterDevice(Id, "acme", [], T0));
        Run(Clean(3));
        var before = _state;
        var refused = Assert.IsType<DeviceCommandRejected>(Run(Clean(3, product: "other")));
        Assert.Equal("product_mismatch", refused.Code);
        Assert.Contains("orch device set-product dev-1 --product other", refused.Message);
        Assert.Equal(before, _state);

        Assert.IsType<DeviceCommandAccepted>(Run(new SetDeviceProduct(Id, "other", "alice", T0)));
        Assert.Equal("other", _state.Product);
        Assert.Equal(0, _state.FloorVersionId);
        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3, product: "other"))).Action);
    }

    [Fact]
    public void Staleness_is_journaled_only_when_it_flips()
    {
        Run(Clean(3));
        var count = _state.EventCount;
        Run(Clean(3, stale: true));
        Assert.True(_state.Stale);
        var afterFlip = _state.EventCount;
        Assert.True(afterFlip > count);
        Run(Clean(3, stale: false));
        Assert.False(_state.Stale);
    }
}
