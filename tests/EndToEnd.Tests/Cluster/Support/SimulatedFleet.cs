using Orchestrator.TestSupport;
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;

namespace Orchestrator.EndToEnd.Tests.Cluster.Support;

/// <summary>
/// Devices speaking the real device protocol to the gateways of a cluster, keeping a ledger of every request the
/// cluster acknowledged (HTTP 200). Each check-in carries a unique <c>agentVersion</c> marker, so every
/// acknowledged check-in can be found again in the device's persisted history.
/// </summary>
public sealed class SimulatedFleet(LocalCluster cluster, string product) : IDisposable
{
    private static readonly string EmptyDigest = InventoryDigest.Compute([]);
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(20) };
    private long _marker;

    public sealed class Device(string id, string secret)
    {
        public string Id { get; } = id;
        public string Secret { get; } = secret;
        public long InstalledVersionId { get; set; }
        public string InventoryDigest { get; set; } = EmptyDigest;
        /// <summary>agentVersion markers of check-ins answered 200.</summary>
        public ConcurrentBag<string> AckedCheckIns { get; } = [];
        /// <summary>Version IDs whose completion report was answered 200.</summary>
        public ConcurrentBag<long> AckedCompletions { get; } = [];
        public int Unacknowledged;
    }

    public List<Device> Devices { get; } = [];

    /// <summary>Provisions <paramref name="count"/> device credentials through the admin API of <paramref name="node"/>.</summary>
    public async Task ProvisionAsync(int count, int node)
    {
        for (var i = 0; i < count; i++)
        {
            var id = $"edge-{i:D3}";
            var (status, body) = await cluster.PostJsonAsync(node, $"admin/v1/devices/{id}/credential", new { });
            Assert.True(status == System.Net.HttpStatusCode.OK || status == System.Net.HttpStatusCode.Created, $"provision {id}: {(int)status} {body}");
            var secret = System.Text.Json.JsonSerializer.Deserialize<ProvisionResponse>(body, HttpProblems.Json)!.Secret;
            Devices.Add(new Device(id, secret));
        }
    }

    /// <summary>
    /// One agent session: check in through a live gateway (round-robin by device), and when told to upgrade,
    /// "install" the target (the download itself is covered by the agent tests) and report completion.
    /// Failures (a dead node, 503 while shards move) are simply not acknowledged; the next session retries.
    /// Returns true when a completion was acknowledged. <paramref name="node"/> pins the gateway.
    /// </summary>
    public async Task<bool> SessionAsync(Device d, int attempt, IReadOnlyDictionary<long, string> digests, int? node = null)
    {
        var alive = cluster.Alive;
        node ??= alive[(Devices.IndexOf(d) + attempt) % alive.Count];
        var gateway = cluster.HttpUrl(node.Value);
        var marker = $"e2e-{Interlocked.Increment(ref _marker)}";
        try
        {
            var checkIn = await SendAsync<CheckInResponse>(gateway, d, "check-in",
                new CheckInRequest(product, d.InstalledVersionId, d.InventoryDigest, null, marker));
            if (checkIn is null) return false;
            d.AckedCheckIns.Add(marker);
            if (checkIn.Action != UpdateAction.Upgrade || checkIn.TargetVersionId is not { } target) return false;
            var done = await SendAsync<object>(gateway, d, "completion", new CompletionReport(target, digests[target]));
            if (done is null) return false;
            d.InstalledVersionId = target;
            d.InventoryDigest = digests[target];
            d.AckedCompletions.Add(target);
            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Interlocked.Increment(ref d.Unacknowledged);
            return false;
        }
    }

    private async Task<T?> SendAsync<T>(Uri gateway, Device d, string route, object body) where T : class
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, $"v1/devices/{d.Id}/{route}"))
        {
            Content = JsonContent.Create(body, body.GetType(), options: HttpProblems.Json),
        };
        await DeviceSigning.SignAsync(req, d.Id, d.Secret);
        using var res = await _http.SendAsync(req);
        if (!res.IsSuccessStatusCode)
        {
            Interlocked.Increment(ref d.Unacknowledged);
            return null;
        }
        return typeof(T) == typeof(object) ? (T)new object() : await res.Content.ReadFromJsonAsync<T>(HttpProblems.Json);
    }

    public void Dispose() => _http.Dispose();
}
