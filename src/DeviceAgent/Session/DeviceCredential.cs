using System.Net.Http.Headers;
using System.Text;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// How the device proves who it is to the gateway (docs/protocol.md, "Device credentials"): HTTP Basic with the
/// device id as user name and the provisioned secret as password, on check-in, reports and store requests alike.
/// </summary>
public static class DeviceCredential
{
    /// <summary>The Authorization header value for a device.</summary>
    public static AuthenticationHeaderValue Header(string deviceId, string secret) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(deviceId + ":" + secret)));
}
