using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Demo;

/// <summary>
/// The demo's rollouts, created and read through the node's admin API (<c>POST /admin/v1/rollouts</c>,
/// <c>GET /admin/v1/rollouts/{id}</c>) exactly as <c>orch rollout create</c> and <c>orch rollout watch</c> do.
/// </summary>
internal sealed class DemoRollouts(HttpClient http, string token)
{
    /// <summary>
    /// The most devices a demo rollout names explicitly: the create body lists every device id and the node
    /// accepts at most 1 MiB of it. A larger fleet would be selected by tag, which is beyond a first demo.
    /// </summary>
    public const int MaxDevices = 10_000;

    /// <summary>Creates a rollout with waves of the given sizes (percent of the selected devices; the last takes the rest).</summary>
    public async Task StartAsync(string id, string product, string version, IReadOnlyList<string> deviceIds, IReadOnlyList<double> wavePercents, CancellationToken ct)
    {
        var body = new
        {
            id,
            product,
            version,
            selector = new { deviceIds },
            waves = wavePercents.Select(p => new { percent = p }).ToList(),
            soakSeconds = 2,
            @operator = "orchestrator-demo",
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/v1/rollouts") { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"the node refused rollout '{id}' with HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
    }

    /// <summary>The rollout as the node reports it.</summary>
    public async Task<RolloutView> GetAsync(string id, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"admin/v1/rollouts/{id}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"reading rollout '{id}' failed with HTTP {(int)response.StatusCode}: {text}");
        return JsonSerializer.Deserialize<RolloutView>(text, AdminJson.Options)
               ?? throw new InvalidOperationException($"reading rollout '{id}': the node answered with an empty body");
    }

    /// <summary>Waits (at most a minute) until the node has assigned <paramref name="deviceId"/> its target from <paramref name="rolloutId"/>.</summary>
    public async Task WaitAssignedAsync(string deviceId, string rolloutId, CancellationToken ct)
    {
        var until = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"admin/v1/devices/{Uri.EscapeDataString(deviceId)}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            // 404: the assignment has not reached the device's journal yet.
            if (!response.IsSuccessStatusCode && response.StatusCode != System.Net.HttpStatusCode.NotFound)
                throw new InvalidOperationException($"reading device '{deviceId}' failed with HTTP {(int)response.StatusCode}: {text}");
            if (response.IsSuccessStatusCode && JsonSerializer.Deserialize<Messages.Devices.DeviceState>(text, AdminJson.Options)?.Target?.RolloutId == rolloutId) return;
            if (DateTime.UtcNow > until) throw new InvalidOperationException($"rollout '{rolloutId}' did not assign device '{deviceId}' within a minute");
            await Task.Delay(250, ct);
        }
    }

    /// <summary>True when the rollout will not move on by itself (Completed, Paused, Aborted, RolledBack).</summary>
    public static bool HasStopped(RolloutView v) => v.Status is not (RolloutStatus.Created or RolloutStatus.Running);

    /// <summary>One line for the terminal: status, current wave and per-wave counters, and the pause reason.</summary>
    public static string Describe(RolloutView v)
    {
        var sb = new StringBuilder($"rollout {v.Spec.RolloutId}: {v.Status}, wave {v.CurrentWave}/{v.Waves.Count}");
        foreach (var w in v.Waves)
            sb.Append($" | w{w.Wave}: {w.Succeeded}/{w.Total} done, {w.InProgress} busy, {w.Failed} failed");
        if (!string.IsNullOrEmpty(v.PauseReason)) sb.Append(" | reason: ").Append(v.PauseReason);
        return sb.ToString();
    }
}
