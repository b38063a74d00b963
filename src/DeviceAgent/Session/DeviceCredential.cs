using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// How the device proves who it is to the gateway (docs/protocol.md, "Device credentials", protocol v2): every
/// request — check-in, reports and store requests alike — is signed with a key derived from the provisioned secret
/// (<see cref="DeviceRequestSignature"/>); the secret itself never leaves the device.
/// </summary>
public static class DeviceCredential
{
    /// <summary>A signer for <paramref name="deviceId"/> drawing sequence numbers from <paramref name="sequence"/>.</summary>
    public static DeviceRequestSigner Signer(string deviceId, string secret, RequestSequence sequence) =>
        new(deviceId, secret, sequence.Next);
}
