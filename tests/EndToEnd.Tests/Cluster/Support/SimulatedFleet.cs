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

    /// <summary>Provisions <paramref name="count"/> device credentials (ids <paramref name="prefix"/>-000 ...) through the admin API of <paramref name="node"/>.</summary>
    public async Task ProvisionAsync(int count, int node, string prefix = "edge")
    {
        for (var i = 0; i < count; i++)
        {
            var id = $"{prefix}-{i:D3}";
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

    /// <summary>
    /// When <paramref name="d"/> is answered again after a failure: a check-in through a live gateway every
    /// <paramref name="every"/>, each without waiting for the earlier ones (a request the gateway routed to a dead
    /// node fails only at its ask timeout, which would hide the moment the device's shard is back), until one is
    /// answered 200. Returns the <paramref name="clock"/> reading at that answer; waits for every attempt, so the
    /// ledger holds each acknowledged check-in. Only for devices no other session uses meanwhile.
    /// </summary>
    public async Task<TimeSpan> FirstAnswerAsync(Device d, System.Diagnostics.Stopwatch clock, TimeSpan every, TimeSpan timeout)
    {
        var answered = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = new List<Task>();
        var deadline = clock.Elapsed + timeout;
        for (var i = 0; !answered.Task.IsCompleted && clock.Elapsed < deadline; i++)
        {
            attempts.Add(AttemptAsync(i));
            await Task.WhenAny(answered.Task, Task.Delay(every));
        }
        await Task.WhenAll(attempts);
        return answered.Task.IsCompleted ? await answered.Task
            : throw new TimeoutException($"{d.Id} not answered within {timeout.TotalSeconds:0} s ({d.Unacknowledged} unacknowledged)");

        async Task AttemptAsync(int attempt)
        {
            var alive = cluster.Alive;
            var gateway = cluster.HttpUrl(alive[attempt % alive.Count]);
            var marker = $"e2e-{Interlocked.Increment(ref _marker)}";
            try
            {
                if (await SendAsync<CheckInResponse>(gateway, d, "check-in",
                        new CheckInRequest(product, d.InstalledVersionId, d.InventoryDigest, null, marker)) is null) return;
                d.AckedCheckIns.Add(marker);
                answered.TrySetResult(clock.Elapsed);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                Interlocked.Increment(ref d.Unacknowledged);
            }
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
