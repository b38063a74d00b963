using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.EndToEnd.Tests.Agent.Support;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>The admin API and /metrics of a <see cref="NodeUnderTest"/>, as raw JSON (what orch and the dashboard read).</summary>
public static class AdminCalls
{
    private static HttpRequestMessage Request(HttpMethod method, string path, object? body = null)
    {
        var req = new HttpRequestMessage(method, path);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        if (body is not null) req.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        return req;
    }

    public static async Task<JsonNode> SendAsync(this NodeUnderTest node, HttpMethod method, string path, object? body = null)
    {
        using var req = Request(method, path, body);
        using var res = await node.Http.SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, $"{method} {path}: HTTP {(int)res.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    public static Task<JsonNode> GetJsonAsync(this NodeUnderTest node, string path) => node.SendAsync(HttpMethod.Get, path);

    /// <summary>Polls the rollout view until <paramref name="condition"/> holds (generous timeout: the machine is shared).</summary>
    public static async Task<JsonNode> UntilRolloutAsync(this NodeUnderTest node, string id, Func<JsonNode, bool> condition, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode view;
        do
        {
            view = await node.GetJsonAsync($"admin/v1/rollouts/{id}");
            if (condition(view)) return view;
            await Task.Delay(200);
        } while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"rollout {id} never reached the expected state; last view: {view.ToJsonString()}");
    }

    public static int Wave(this JsonNode view, string counter) => view["waves"]!.AsArray().Sum(w => w![counter]!.GetValue<int>());

    /// <summary>Event type names of the device's journal, oldest first.</summary>
    public static async Task<List<string>> JournalAsync(this NodeUnderTest node, string deviceId) =>
        (await node.GetJsonAsync($"admin/v1/devices/{deviceId}/history?last=1000"))["events"]!.AsArray().Select(e => e!["type"]!.GetValue<string>()).ToList();

    /// <summary>Sum of every sample of a Prometheus metric family whose label set contains <paramref name="labels"/> (0 when absent).</summary>
    public static async Task<double> MetricAsync(this NodeUnderTest node, string name, params string[] labels) =>
        PrometheusText.Sum(await node.Http.GetStringAsync("metrics"), name, labels);

    /// <summary>Polls /metrics until the metric's value is <paramref name="expected"/> (gauges refresh on their own period).</summary>
    public static async Task<double> UntilMetricAsync(this NodeUnderTest node, double expected, string name, params string[] labels)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        double value;
        do
        {
            value = await node.MetricAsync(name, labels);
            if (value == expected) return value;
            await Task.Delay(250);
        } while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"{name}{{{string.Join(",", labels)}}} stayed {value}, expected {expected}");
    }

    /// <summary>Creates a rollout of <paramref name="version"/> to exactly <paramref name="deviceIds"/>, one wave, with extra spec fields.</summary>
    public static Task<JsonNode> CreateRolloutAsync(this NodeUnderTest node, string id, string version, IEnumerable<string> deviceIds,
        IDictionary<string, object>? extra = null)
    {
        var body = new Dictionary<string, object>
        {
            ["id"] = id, ["product"] = "acme", ["version"] = version,
            ["selector"] = new Dictionary<string, object> { ["deviceIds"] = deviceIds.ToArray() },
            ["successThreshold"] = 1.0, ["operator"] = "e2e",
        };
        foreach (var (k, v) in extra ?? new Dictionary<string, object>()) body[k] = v;
        return node.SendAsync(HttpMethod.Post, "admin/v1/rollouts", body);
    }
}
