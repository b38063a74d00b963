using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>429 + Retry-After through the real stack, with tight limits.</summary>
public sealed class ThrottlingHttpTests
{
    [Fact]
    public async Task Device_over_its_burst_gets_429_with_retry_after_and_other_devices_still_download()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            // The burst must admit the largest chunk (default bound 256 KiB + codec overhead), or the node refuses to start.
            ["Throttle:DeviceBurstBytes"] = "300000",
            ["Throttle:DeviceBytesPerSecond"] = "100000",
            ["Throttle:DeviceMaxBytesPerWindow"] = "1000000",
        });
        var a = await node.ProvisionAsync("thr-a");
        var b = await node.ProvisionAsync("thr-b");
        var data = new byte[280_000];
        new Random(9).NextBytes(data);
        var id = node.WriteChunk(data);
        var path = $"/v1/store/chunks/{id[..2]}/{id}";

        async Task<HttpResponseMessage> Get(string dev, string secret)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, path);
            DeviceSigning.SignAs(req, dev, secret);
            return await node.Http.SendAsync(req);
        }

        using (var first = await Get("thr-a", a)) Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var second = await Get("thr-a", a);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var retry = second.Headers.RetryAfter!.Delta!.Value;
        // 260 000 bytes short at 100 000 B/s: three seconds (rounded up to whole seconds).
        Assert.InRange(retry.TotalSeconds, 1, 3);
        Assert.Equal("throttled", (await second.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        Assert.Equal("no-store", second.Headers.CacheControl!.ToString());

        using (var other = await Get("thr-b", b)) Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        var metrics = await node.Http.GetStringAsync("/metrics");
        Assert.Contains("orch_gateway_throttled", metrics);
    }

    [Fact]
    public async Task Global_egress_budget_applies_across_devices()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Throttle:GlobalBurstBytes"] = "300000",
            ["Throttle:GlobalBytesPerSecond"] = "10000",
        });
        var a = await node.ProvisionAsync("glob-a");
        var b = await node.ProvisionAsync("glob-b");
        var data = new byte[280_000];
        new Random(10).NextBytes(data);
        var id = node.WriteChunk(data);
        var path = $"/v1/store/chunks/{id[..2]}/{id}";
        using (var req = new HttpRequestMessage(HttpMethod.Get, path))
        {
            DeviceSigning.SignAs(req, "glob-a", a);
            using var ok = await node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var req = new HttpRequestMessage(HttpMethod.Get, path))
        {
            DeviceSigning.SignAs(req, "glob-b", b);
            using var refused = await node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds >= 20);
        }
    }
}
