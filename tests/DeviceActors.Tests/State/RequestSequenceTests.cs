using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>The replay rule of the pure state machine (protocol v2 request sequence numbers).</summary>
public sealed class RequestSequenceTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DeviceActorSettings Settings = DeviceActorSettings.Default;
    private readonly Random _random = new(42);
    private DeviceState _state = DeviceState.Initial(Id);

    private (IReadOnlyList<IDeviceEvent> Events, IOrchestratorMessage Reply) Run(IDeviceCommand c)
    {
        var outcome = DeviceStateMachine.Decide(_state, c, Settings, _random, T0);
        foreach (var e in outcome.Events) _state = DeviceStateMachine.Apply(_state, e, _state.EventCount + 1);
        return (outcome.Events, outcome.Reply(_state));
    }

    private static CheckIn Clean(long version, long seq, TimeSpan after = default) =>
        new(Id, "acme", version, "d-ok", "d-ok", $"{version}.0", $"manifests/acme/{version}.json", [], "1.0", T0 + after, seq);

    [Fact]
    public void A_replayed_failure_report_is_refused_and_counts_no_attempt()
    {
        Run(Clean(3, 10));
        Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"));
        Run(Clean(3, 11));
        var failure = new ReportFailure(Id, 4, WorkPhase.Download, "reset", 1, T0, 12);
        Assert.IsType<RetryAdvice>(Run(failure).Reply);
        Assert.Equal((1, 12L), (_state.FailedAttempts, _state.LastRequestSequence));
        var before = _state;
        for (var i = 0; i < 3; i++)
        {
            var (events, reply) = Run(failure);
            Assert.Empty(events);
            Assert.Equal(DeviceRequestSequence.ReplayedCode, Assert.IsType<DeviceCommandRejected>(reply).Code);
        }
        // An older sequence number (a reordered request) is refused too; the state is exactly as before.
        Assert.Equal(DeviceRequestSequence.ReplayedCode, Assert.IsType<DeviceCommandRejected>(Run(failure with { RequestSequence = 5 }).Reply).Code);
        Assert.Equal(before, _state);
        // The device's own next report (a higher number) counts.
        Assert.IsType<RetryAdvice>(Run(failure with { RequestSequence = 13 }).Reply);
        Assert.Equal(2, _state.FailedAttempts);
    }

    [Fact]
    public void Every_journaled_device_event_carries_its_sequence_and_recovery_restores_the_high_water_mark()
    {
        var events = new List<IDeviceEvent>();
        events.AddRange(Run(Clean(3, 100)).Events);
        events.AddRange(Run(new AssignTarget(Id, "acme", "4.0", 4, "manifests/acme/4.json", "r1")).Events);
        events.AddRange(Run(Clean(3, 101)).Events);
        events.AddRange(Run(new ReportProgress(Id, 4, WorkPhase.Download, 1, 2, 1, 2, T0, 102)).Events);
        events.AddRange(Run(new ReportFailure(Id, 4, WorkPhase.Download, "x", 1, T0, 103)).Events);
        events.AddRange(Run(new ReportCompletion(Id, 4, "d-4", T0, 104)).Events);
        Assert.Equal([100L, 0, 101, 102, 103, 104], events.Select(DeviceRequestSequence.Of));
        var recovered = DeviceState.Initial(Id);
        for (var i = 0; i < events.Count; i++) recovered = DeviceStateMachine.Apply(recovered, events[i], i + 1);
        Assert.Equal(104, recovered.LastRequestSequence);
        Assert.Equal(_state, recovered);
    }

    [Fact]
    public void A_heartbeat_stays_unjournaled_whatever_its_sequence_and_commands_without_one_are_unchecked()
    {
        Run(Clean(3, 10));
        var beat = Run(Clean(3, 11, TimeSpan.FromMinutes(1)));
        Assert.Empty(beat.Events); // a new sequence number alone is no reason to write
        Assert.IsType<CheckInDecision>(beat.Reply);
        // Sequence 0 is what commands not from the signed device API carry: never refused as a replay.
        Assert.IsType<CheckInDecision>(Run(Clean(3, 0, TimeSpan.FromMinutes(2))).Reply);
    }
}
