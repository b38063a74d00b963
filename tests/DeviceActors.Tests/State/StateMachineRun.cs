using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>
/// One device driven through the pure state machine as the actor does it: decide, apply the events in order, reply from
/// the new state; the journal keeps every event.
/// </summary>
internal sealed class StateMachineRun(string deviceId, DateTimeOffset now)
{
    private readonly Random _random = new(42);

    /// <summary>The state after every event so far.</summary>
    public DeviceState State { get; private set; } = DeviceState.Initial(deviceId);

    /// <summary>Every event so far, in order.</summary>
    public List<IDeviceEvent> Journal { get; } = [];

    /// <summary>Decides <paramref name="command"/>, applies its events and returns the reply.</summary>
    public IOrchestratorMessage Run(IDeviceCommand command)
    {
        var outcome = DeviceStateMachine.Decide(State, command, DeviceActorSettings.Default, _random, now);
        foreach (var e in outcome.Events)
        {
            Journal.Add(e);
            State = DeviceStateMachine.Apply(State, e, State.EventCount + 1);
        }
        return outcome.Reply(State);
    }
}
