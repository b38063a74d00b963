using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Trust;

/// <summary>
/// Issue 14 item 4 with real processes: an operator's rollout rollback reaches real agents as director-signed
/// downgrade authorizations; they install the previous version and end Idle on it, and the rollout view says so only
/// when the devices do.
/// </summary>
public sealed class RollbackTests(ITestOutputHelper output)
{
    private async Task Run(TestDevice d)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
    }

    private static async Task<RolloutView> SendAsync(NodeUnderTest node, HttpMethod method, string path, object? body = null)
    {
        using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await node.Http.SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, $"{method} {path}: {(int)res.StatusCode} {text}");
        return JsonSerializer.Deserialize<RolloutView>(text, AdminJson.Options)!;
    }

    private static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what}; last: {JsonSerializer.Serialize(value, AdminJson.Options)}");
            await Task.Delay(250);
        }
    }

    [Fact]
    public async Task Rollback_installs_the_previous_version_on_real_agents_and_the_rollout_view_agrees_with_the_devices()
    {
        using var keys = new TrustKeys();
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings());
        using var store = new TestStore(node.StoreRoot, keys.Directory);
        keys.PublishRoots(store.Store);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        keys.WriteFloor(store.Store, "acme", v1.Version, v1.VersionId); // a downgrade may not go below 1.0
        var ids = new[] { "rb-1", "rb-2" };
        var devices = new List<TestDevice>();
        foreach (var id in ids)
        {
            devices.Add(new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync(id), deviceId: id, contentKey: store.ContentKey.ToBytes(),
                trustRoot: keys.RootDocument, download: TestDevice.FastDownloads with { MaxSessionAttempts = 3, RequestTimeoutSeconds = 20 }));
            await node.AssignAsync(id, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        }
        try
        {
            foreach (var d in devices) await Run(d);
            Assert.All(devices, d => Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d)));

            // The devices' channel runs 1.0: the rollout moves it to 2.0 and the rollback moves it back.
            using (var set = new HttpRequestMessage(HttpMethod.Post, "admin/v1/channels/acme/stable") { Content = JsonContent.Create(new { version = "1.0", reason = "baseline" }) })
            {
                set.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
                using var res = await node.Http.SendAsync(set);
                Assert.True(res.IsSuccessStatusCode, await res.Content.ReadAsStringAsync());
            }
            await SendAsync(node, HttpMethod.Post, "admin/v1/rollouts",
                new { id = "ro-up", product = "acme", version = "2.0", selector = new { deviceIds = ids } });
            foreach (var id in ids)
                await PollAsync(() => node.StateAsync(id), s => s.Target?.RolloutId == "ro-up", $"{id} assigned by ro-up");
            foreach (var d in devices) await Run(d);
            await PollAsync(() => SendAsync(node, HttpMethod.Get, "admin/v1/rollouts/ro-up"), v => v.Status == RolloutStatus.Completed, "ro-up completed");
            foreach (var id in ids) Assert.Equal(v2.VersionId, (await node.StateAsync(id)).FloorVersionId);

            var rolledBack = await SendAsync(node, HttpMethod.Post, "admin/v1/rollouts/ro-up/rollback", new { reason = "bad build" });
            Assert.Equal(RolloutStatus.RolledBack, rolledBack.Status);
            Assert.Equal(new RollbackCounters(2, 2, 0, 0), rolledBack.Rollback);
            foreach (var id in ids)
                await PollAsync(() => node.StateAsync(id), s => s.Target is { Downgrade: true } t && t.VersionId == v1.VersionId, $"{id} got the downgrade");
            // The rollback moves the channel back to 1.0 too; once it has, the devices still get their authorized
            // downgrade (from the channel alone 1.0 would be a downgrade below their floor, refused).
            await PollAsync(async () =>
            {
                using var req = new HttpRequestMessage(HttpMethod.Get, "admin/v1/channels/acme/stable");
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
                using var res = await node.Http.SendAsync(req);
                using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
                return doc.RootElement.TryGetProperty("channel", out var channel) && channel.TryGetProperty("current", out var current)
                    && current.ValueKind == JsonValueKind.Object ? current.GetProperty("versionId").GetInt64() : 0;
            }, id => id == v1.VersionId, "channel acme/stable moved back to 1.0");
            // The devices are still on 2.0: the rollout does not claim otherwise.
            var midway = await SendAsync(node, HttpMethod.Get, "admin/v1/rollouts/ro-up");
            Assert.Equal(0, midway.Rollback!.Restored);
            Assert.Equal(2, midway.Rollback.InProgress);

            foreach (var d in devices) await Run(d); // installs 1.0 under the downgrade authorization
            foreach (var d in devices) await Run(d); // checks in again on 1.0: nothing to do
            foreach (var d in devices)
            {
                Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
                Assert.Equal(v1.VersionId, d.Hidden.ReadVersionRecord()!.VersionId);
                var s = await node.StateAsync(d.Config.DeviceId);
                Assert.Equal(DeviceStatus.Idle, s.Status);
                Assert.Equal(v1.VersionId, s.InstalledVersionId);
                Assert.Equal(v1.VersionId, s.FloorVersionId); // lowered by the completed, authorized downgrade
            }
            var end = await PollAsync(() => SendAsync(node, HttpMethod.Get, "admin/v1/rollouts/ro-up"), v => v.Rollback!.Restored == 2, "rollback restored");
            Assert.Equal(new RollbackCounters(2, 0, 2, 0), end.Rollback);
            Assert.DoesNotContain(end.Failures, f => f.Reason.StartsWith("rollback", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var d in devices) d.Dispose();
        }
    }
}
