using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>Issue 17 in the pure state machine: a device's report that it has no working updater, and its clearing.</summary>
public sealed class UpdaterLossTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly StateMachineRun _device = new(Id, T0);

    private IOrchestratorMessage Run(IDeviceCommand c) => _device.Run(c);

    private static CheckIn Clean(long version, long seq = 0, DateTimeOffset? at = null) =>
        new(Id, "acme", version, "d", "d", $"{version}.0", $"manifests/acme/{version}.json", [], "1.0", at ?? T0, seq);

    [Fact]
    public void A_lost_updater_is_recorded_once_per_reason_and_the_next_check_in_clears_it()
    {
        Run(Clean(3, 10));
        var status = _device.State.Status;
        Assert.IsType<DeviceCommandAccepted>(Run(new ReportUpdaterLost(Id, "all three copies damaged", T0.AddMinutes(1), 11)));
        Assert.Equal(new UpdaterLoss("all three copies damaged", T0.AddMinutes(1)), _device.State.UpdaterLost);
        Assert.Equal(status, _device.State.Status); // the client still runs: nothing about its installation changed
        Assert.Equal(11, _device.State.LastRequestSequence);
        Assert.Equal(T0.AddMinutes(1), _device.State.LastSeen);

        var count = _device.Journal.Count;
        Run(new ReportUpdaterLost(Id, "all three copies damaged", T0.AddMinutes(2), 12));
        Assert.Equal(count, _device.Journal.Count); // the same report on every start is journaled once
        Run(new ReportUpdaterLost(Id, "virtual copy missing", T0.AddMinutes(3), 13));
        Assert.Equal("virtual copy missing", _device.State.UpdaterLost!.Reason);

        Assert.Equal(UpdateAction.None, Assert.IsType<CheckInDecision>(Run(Clean(3, 14, T0.AddMinutes(4)))).Action);
        Assert.Null(_device.State.UpdaterLost);
        Assert.IsType<DeviceUpdaterRestored>(_device.Journal[^1]);
        count = _device.Journal.Count;
        Run(Clean(3, 15, T0.AddMinutes(5)));
        Assert.DoesNotContain(_device.Journal.Skip(count), e => e is DeviceUpdaterRestored);
    }

    [Fact]
    public void A_replayed_report_and_an_invalid_reason_change_nothing()
    {
        Run(Clean(3, 20));
        var before = _device.State;
        var replayed = Assert.IsType<DeviceCommandRejected>(Run(new ReportUpdaterLost(Id, "forged", T0, 20)));
        Assert.Equal(DeviceRequestSequence.ReplayedCode, replayed.Code);
        Assert.Equal(before, _device.State);

        Assert.Throws<ArgumentException>(() => new ReportUpdaterLost(Id, " ", T0));
        var tooLong = Assert.Throws<ArgumentException>(() => new ReportUpdaterLost(Id, new string('x', ReportUpdaterLost.MaxReasonLength + 1), T0));
        Assert.Contains("at most 2000", tooLong.Message);
    }

    [Fact]
    public void Replaying_the_journal_gives_the_same_state()
    {
        Run(Clean(3, 30));
        Run(new ReportUpdaterLost(Id, "all three copies damaged", T0, 31));
        var replayed = DeviceState.Initial(Id);
        for (var i = 0; i < _device.Journal.Count; i++) replayed = DeviceStateMachine.Apply(replayed, _device.Journal[i], i + 1);
        Assert.Equal((_device.State.UpdaterLost, _device.State.Status, _device.State.LastRequestSequence, _device.State.EventCount, _device.State.LastSeen),
            (replayed.UpdaterLost, replayed.Status, replayed.LastRequestSequence, replayed.EventCount, replayed.LastSeen));
    }
}
