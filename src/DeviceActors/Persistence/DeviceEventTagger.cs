using System.Collections.Immutable;
using Akka.Persistence.Journal;
using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.Persistence;

/// <summary>
/// Write-side event adapter (bound in <see cref="Hosting.DevicePersistenceHosting"/>) that tags device events for persistence
/// query: every event carries <see cref="AllDevicesTag"/> (the registry's feed); assignment events also carry
/// <c>rollout:{id}</c> so a rollout can follow its own devices.
/// </summary>
public sealed class DeviceEventTagger : IWriteEventAdapter
{
    /// <summary>Tag on every device event.</summary>
    public const string AllDevicesTag = "device";

    /// <summary>The tags of most events (just <see cref="AllDevicesTag"/>): one shared set, so the journal recognises it.</summary>
    public static readonly IImmutableSet<string> AllDevicesOnly = ImmutableHashSet.Create(AllDevicesTag);

    /// <summary>Tag of the events of one rollout.</summary>
    /// <param name="rolloutId">Rollout id.</param>
    public static string RolloutTag(string rolloutId) => "rollout:" + rolloutId;

    /// <inheritdoc />
    public string Manifest(object evt) => string.Empty;

    /// <inheritdoc />
    public object ToJournal(object evt) => evt switch
    {
        TargetAssigned t => new Tagged(evt, [AllDevicesTag, RolloutTag(t.Target.RolloutId)]),
        AssignmentCancelled { RolloutId: { } r } => new Tagged(evt, [AllDevicesTag, RolloutTag(r)]),
        IDeviceEvent => new Tagged(evt, AllDevicesOnly),
        _ => evt,
    };
}
