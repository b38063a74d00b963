using Orchestrator.DeviceActors.State;
using Orchestrator.Messages;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Tests.State;

/// <summary>A decommissioned device in the pure state machine: retired once, refused from then on, readable.</summary>
public sealed class DecommissionTests
{
    private const string Id = "dev-1";
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly StateMachineRun _device = new(Id, T0);

    private IOrchestratorMessage Run(IDeviceCommand c) => _device.Run(c);

    [Fact]
    public void A_decommissioned_device_drops_its_work_and_refuses_everything_but_reads()
    {
        Run(new RegisterDevice(Id, "acme", [], T0));
        Run(new AssignTarget(Id, "acme", "2.0", 2, "manifests/acme/2.0.json", "ro-1"));
        Assert.NotNull(_device.State.Target);

        Assert.IsType<DeviceCommandAccepted>(Run(new DecommissionDevice(Id, "ops", "returned", T0.AddMinutes(1))));
        Assert.Equal(T0.AddMinutes(1), _device.State.Decommissioned);
        Assert.Null(_device.State.Target);
        Assert.Null(_device.State.Work);
        var count = _device.Journal.Count;
        Assert.IsType<DeviceCommandAccepted>(Run(new DecommissionDevice(Id, "ops", "again", T0.AddMinutes(2))));
        Assert.Equal(count, _device.Journal.Count); // retired once

        var before = _device.State;
        foreach (IDeviceCommand c in new IDeviceCommand[]
                 {
                     new CheckIn(Id, "acme", 1, "d", "d", "1.0", "manifests/acme/1.0.json", [], "1.0", T0.AddMinutes(3), 5),
                     new AssignTarget(Id, "acme", "2.0", 2, "manifests/acme/2.0.json", "ro-2"),
                     new RegisterDevice(Id, "acme", ["eu"], T0.AddMinutes(3)),
                     new ReportUpdaterLost(Id, "gone", T0.AddMinutes(3), 6),
                 })
            Assert.Equal("device_decommissioned", Assert.IsType<DeviceCommandRejected>(Run(c)).Code);
        Assert.Equal(before, _device.State);
        Assert.Equal(count, _device.Journal.Count);
        Assert.Equal(Id, Assert.IsType<DeviceState>(Run(new GetDeviceState(Id))).DeviceId);
    }
}
