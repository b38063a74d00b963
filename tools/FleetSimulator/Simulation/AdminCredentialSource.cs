using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Orchestrator.DeviceAgent.Simulation;

/// <summary>
/// Gets device secrets from the node's admin API (<c>POST /admin/v1/devices/{id}/credential</c> with
/// <c>{"rotate": true}</c>, so a re-created device folder gets a fresh secret that replaces the old one).
/// </summary>
public sealed class AdminCredentialSource(HttpClient http, string nodeBaseUrl, string adminToken)
{
    private readonly Uri _base = new(nodeBaseUrl.EndsWith('/') ? nodeBaseUrl : nodeBaseUrl + "/");

    /// <summary>Provisions (or rotates) the credential of <paramref name="deviceId"/>; returns the secret.</summary>
    public async Task<string> ProvisionAsync(string deviceId, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_base, $"admin/v1/devices/{Uri.EscapeDataString(deviceId)}/credential"))
        {
            Content = JsonContent.Create(new { rotate = true }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        using var response = await http.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"provisioning '{deviceId}' through {_base}admin/v1 failed with HTTP {(int)response.StatusCode}: {body} " +
                "(check --admin-token-file: it must hold a token with the 'operate' scope, e.g. the node's data/admin-token)");
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("secret").GetString()
               ?? throw new InvalidOperationException($"provisioning '{deviceId}': the node answered without a secret");
    }
}
