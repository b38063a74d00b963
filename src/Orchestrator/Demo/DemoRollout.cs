using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Node.Demo;

/// <summary>A rollout the demo started and watches: one progress line at a time, and whether it has ended.</summary>
internal interface IDemoRollout
{
    /// <summary>A one-line state (status, wave, counters).</summary>
    Task<(string Line, bool Ended)> PollAsync(CancellationToken ct);
}

/// <summary>Starts rollouts through the node's admin API (<c>POST /admin/v1/rollouts</c>) when the node has it.</summary>
internal sealed class AdminApiRollouts(HttpClient http, string token)
{
    /// <summary>Whether this node serves the rollout routes (they arrive with the rollouts feature).</summary>
    public async Task<bool> AvailableAsync(CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Get, "admin/v1/rollouts", null, ct);
        return response.StatusCode != HttpStatusCode.NotFound && response.StatusCode != HttpStatusCode.MethodNotAllowed;
    }

    /// <summary>Creates a rollout with waves of the given sizes (percent of the selected devices; the last takes the rest).</summary>
    public async Task<IDemoRollout> StartAsync(string id, string product, string version, IReadOnlyList<string> deviceIds, IReadOnlyList<double> wavePercents, CancellationToken ct)
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
        using var response = await SendAsync(HttpMethod.Post, "admin/v1/rollouts", JsonContent.Create(body), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"the node refused rollout '{id}' with HTTP {(int)response.StatusCode}: {text}");
        return new Watched(this, id);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request, ct);
    }

    private sealed class Watched(AdminApiRollouts api, string id) : IDemoRollout
    {
        public async Task<(string Line, bool Ended)> PollAsync(CancellationToken ct)
        {
            using var response = await api.SendAsync(HttpMethod.Get, $"admin/v1/rollouts/{id}", null, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return ($"rollout {id}: HTTP {(int)response.StatusCode} {text}", false);
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            var status = Field(root, "status");
            var sb = new StringBuilder($"rollout {id}: {status}, wave {Field(root, "currentWave")}");
            if (root.TryGetProperty("waves", out var waves) && waves.ValueKind == JsonValueKind.Array)
            {
                foreach (var w in waves.EnumerateArray())
                    sb.Append(CultureInfo.InvariantCulture, $" | w{Field(w, "wave")}: {Field(w, "succeeded")}/{Field(w, "total")} done, {Field(w, "inProgress")} busy, {Field(w, "failed")} failed");
            }
            var reason = Field(root, "pauseReason");
            if (reason.Length > 0) sb.Append(" | reason: ").Append(reason);
            var ended = status is "Completed" or "Aborted" or "RolledBack" or "Paused" or "3" or "4" or "5" or "2";
            return (sb.ToString(), ended);
        }

        private static string Field(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) ? v.ValueKind switch { JsonValueKind.Null => "", JsonValueKind.String => v.GetString()!, _ => v.ToString() } : "?";
    }
}

/// <summary>
/// The fallback when the node has no rollout routes: the demo itself walks the waves, assigning each device
/// through the device shard region (the same <see cref="AssignTarget"/> a rollout wave sends) and waiting until the
/// wave's devices report the version before starting the next.
/// </summary>
internal sealed class ShardRegionRollout : IDemoRollout
{
    private readonly IActorRef _region;
    private readonly string _id;
    private readonly long _versionId;
    private readonly List<List<string>> _waves;
    private readonly Func<string, Task<object>> _assign;
    private int _wave;
    private bool _assigned;

    public ShardRegionRollout(IActorRef region, string id, string product, string version, long versionId, string manifestPath,
        IReadOnlyList<string> deviceIds, IReadOnlyList<double> wavePercents)
    {
        _region = region;
        _id = id;
        _versionId = versionId;
        _waves = [];
        var taken = 0;
        for (var i = 0; i < wavePercents.Count; i++)
        {
            var end = i == wavePercents.Count - 1 ? deviceIds.Count : Math.Max(taken + 1, (int)Math.Ceiling(deviceIds.Count * wavePercents[i] / 100));
            end = Math.Min(end, deviceIds.Count);
            if (end > taken) _waves.Add(deviceIds.Skip(taken).Take(end - taken).ToList());
            taken = end;
        }
        _assign = d => _region.Ask<object>(new AssignTarget(d, product, version, versionId, manifestPath, id), TimeSpan.FromSeconds(10));
    }

    public async Task<(string Line, bool Ended)> PollAsync(CancellationToken ct)
    {
        if (_wave >= _waves.Count) return ($"rollout {_id} (shard-region assignment): all {_waves.Count} waves done", true);
        var devices = _waves[_wave];
        if (!_assigned)
        {
            foreach (var d in devices)
            {
                var answer = await _assign(d);
                if (answer is not DeviceCommandAccepted) throw new InvalidOperationException($"device {d} refused the assignment: {answer}");
            }
            _assigned = true;
        }
        var states = await Task.WhenAll(devices.Select(d => _region.Ask<object>(new GetDeviceState(d), TimeSpan.FromSeconds(10), ct)));
        var done = states.OfType<DeviceState>().Count(s => s.InstalledVersionId >= _versionId);
        var line = $"rollout {_id} (shard-region assignment): wave {_wave + 1}/{_waves.Count}: {done}/{devices.Count} devices installed";
        if (done == devices.Count)
        {
            _wave++;
            _assigned = false;
        }
        return (line, _wave >= _waves.Count);
    }
}
