using Orchestrator.Messages.Devices;

namespace Orchestrator.DeviceActors.State;

/// <summary>
/// The trust rules of the device state machine (issue 14): product binding and the rollback floor. Pure helpers of
/// <see cref="DeviceStateMachine.Decide"/> and <see cref="DeviceStateMachine.Apply"/>.
/// </summary>
public static class DeviceTrustRules
{
    /// <summary>
    /// A check-in claiming another product than the registered one is refused: the product is bound to the device
    /// and changes only by <see cref="SetDeviceProduct"/>, so a device (or whoever holds its credential) cannot move
    /// itself to another product's releases.
    /// </summary>
    public static CommandOutcome? ProductMismatch(DeviceState s, CheckIn c) =>
        s.Product is not null && s.Product != c.Product
            ? CommandOutcome.Reject(s.DeviceId, "product_mismatch",
                $"Device '{s.DeviceId}' is registered for product '{s.Product}'; a check-in claiming '{c.Product}' is refused and nothing changed. " +
                $"If the device really moved, an operator runs `orch device set-product {s.DeviceId} --product {c.Product}`.")
            : null;

    /// <summary>
    /// An assignment below the device's floor needs an operator's downgrade authorization (a rollout rollback);
    /// anything else would let a mistaken or hostile assignment roll a device back.
    /// </summary>
    public static CommandOutcome? BelowFloor(DeviceState s, AssignTarget a) =>
        a.VersionId < s.FloorVersionId && !a.AuthorizeDowngrade
            ? CommandOutcome.Reject(s.DeviceId, "below_floor",
                $"Cannot assign {a.Product} {a.Version} (version ID {a.VersionId}) to device '{s.DeviceId}': its floor is version ID {s.FloorVersionId}. " +
                "Only a rollout rollback (an authorized downgrade) installs below the floor.")
            : null;

    /// <summary>True when the target may be handed out: at or above the floor, or an authorized downgrade.</summary>
    public static bool MayInstall(DeviceState s, long versionId, TargetAssignment? rollout) =>
        versionId >= s.FloorVersionId || rollout is { Downgrade: true } && rollout.VersionId == versionId;

    /// <summary>The floor after a completed install: the highest version installed, unless an authorized downgrade completed.</summary>
    public static long FloorAfterCompletion(DeviceState s, WorkCompleted w) =>
        s.Target is { Downgrade: true } t && t.VersionId == w.InstalledVersionId && w.Kind == WorkKind.Upgrade
            ? w.InstalledVersionId
            : Math.Max(s.FloorVersionId, w.InstalledVersionId);

    /// <summary>Moves the device to another product (operator command); the same product is a no-op.</summary>
    public static CommandOutcome SetProduct(DeviceState s, SetDeviceProduct p) =>
        s.Product == p.Product
            ? new CommandOutcome([], st => new DeviceCommandAccepted(st.DeviceId, st.Status))
            : new CommandOutcome([new DeviceProductChanged(s.Product, p.Product, p.Operator, p.Timestamp)],
                st => new DeviceCommandAccepted(st.DeviceId, st.Status));
}
