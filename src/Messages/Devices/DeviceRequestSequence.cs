namespace Orchestrator.Messages.Devices;

/// <summary>
/// The replay rule of protocol v2 in one place: which device commands and events carry a request sequence number,
/// and the code a replayed one is refused with.
/// </summary>
public static class DeviceRequestSequence
{
    /// <summary>Rejection code (HTTP 401) of a request whose sequence number is at or below the last accepted one.</summary>
    public const string ReplayedCode = "replayed_sequence";

    /// <summary>The sequence number a device command carries; 0 for commands that do not come from a device request.</summary>
    public static long Of(IDeviceCommand command) => command switch
    {
        CheckIn c => c.RequestSequence,
        ReportProgress p => p.RequestSequence,
        ReportFailure f => f.RequestSequence,
        ReportCompletion c => c.RequestSequence,
        ReportUpdaterLost u => u.RequestSequence,
        _ => 0,
    };

    /// <summary>The sequence number a persisted event carries; 0 for events not caused by a device request.</summary>
    public static long Of(IDeviceEvent e) => e switch
    {
        DeviceCheckedIn c => c.RequestSequence,
        ProgressRecorded p => p.RequestSequence,
        AttemptFailed f => f.RequestSequence,
        WorkCompleted w => w.RequestSequence,
        DeviceUpdaterLost u => u.RequestSequence,
        _ => 0,
    };

    /// <summary>
    /// The refusal for <paramref name="command"/> when its sequence number is at or below <paramref name="highWater"/>;
    /// null when it is new (or carries none).
    /// </summary>
    public static DeviceCommandRejected? RefuseReplay(IDeviceCommand command, long highWater)
    {
        var seq = Of(command);
        return seq > 0 && seq <= highWater
            ? new DeviceCommandRejected(command.DeviceId, ReplayedCode,
                $"Request sequence {seq} of device '{command.DeviceId}' is not above the last accepted one ({highWater}): a replayed or " +
                "reordered request, refused and nothing changed. A device signs every request with a new, higher sequence number.")
            : null;
    }
}
