namespace Orchestrator.Messages.Devices;

/// <summary>
/// A device's credential was revoked or replaced (rotation, re-provisioning) through one node: published on
/// <see cref="CredentialTopics.Changes"/> after the database change committed, so every gateway drops its cached
/// request key of the device and reads the database on the device's next request.
/// </summary>
/// <param name="DeviceId">The device whose credential changed.</param>
/// <param name="ChangedUtc">When the change was committed (for logs; receivers evict whatever they hold).</param>
public sealed record DeviceCredentialChanged(string DeviceId, DateTimeOffset ChangedUtc) : IOrchestratorMessage;

/// <summary>Distributed pub-sub topics of device credentials.</summary>
public static class CredentialTopics
{
    /// <summary>Every revocation and rotation publishes a <see cref="DeviceCredentialChanged"/> here.</summary>
    public const string Changes = "orch-device-credentials";
}
