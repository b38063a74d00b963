using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// Requests a test sends to a node process (<see cref="NodeProcess"/>) over HTTP, where no in-process service can be
/// called: provisioning with the operate token and device check-ins signed as an agent signs them.
/// </summary>
internal static class NodeProcessHttp
{
    /// <summary>Provisions a credential for <paramref name="deviceId"/> through the admin API; returns its secret.</summary>
    public static async Task<string> ProvisionAsync(HttpClient http, string deviceId)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"admin/v1/devices/{deviceId}/credential");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await http.SendAsync(req);
        Assert.True(res.IsSuccessStatusCode, $"provision {deviceId}: {(int)res.StatusCode}");
        return (await res.Content.ReadFromJsonAsync<ProvisionResponse>(HttpProblems.Json))!.Secret;
    }

    /// <summary>Sends <paramref name="body"/> as the device's check-in, signed with its secret; the caller disposes the answer.</summary>
    public static async Task<HttpResponseMessage> CheckInAsync(HttpClient http, string deviceId, string secret, CheckInRequest body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"v1/devices/{deviceId}/check-in")
        {
            Content = JsonContent.Create(body, options: HttpProblems.Json),
        };
        await DeviceSigning.SignAsync(req, deviceId, secret);
        return await http.SendAsync(req);
    }
}
