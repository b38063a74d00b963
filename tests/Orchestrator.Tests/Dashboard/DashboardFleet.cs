using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>
/// A real node with data for the dashboard: acme 1.0.0 and 2.0.0 published, dash-ok-1 and dash-ok-2 idle on 1.0.0,
/// dash-new idle on 2.0.0, dash-broken failed a repair with "checksum mismatch on bin/app"; rollout ro-dash of 2.0.0 to
/// dash-ok-1 and dash-ok-2 in waves of 1 and 100%, so dash-ok-1 is assigned (UpgradeAssigned) and wave 2 waits.
/// </summary>
public class DashboardFleet : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;
    public const string FailureReason = "checksum mismatch on bin/app";

    /// <summary>The first release, as published.</summary>
    protected PublishResult V1 { get; private set; } = null!;

    /// <summary>More data for a derived fixture, after the base fleet is in place.</summary>
    protected virtual Task SeedMoreAsync() => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        Node = await TestNode.StartAsync(realDevices: true);
        var tree = Path.Combine(Node.Root, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        var files = new Dictionary<string, string>();
        void Write(string path, string text)
        {
            File.WriteAllText(Path.Combine(tree, path), text);
            files[path] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        }
        Write("bin/app", "app v1");
        Write("config.ini", "x=1");
        var store = FileSystemStore.Open(Node.StoreRoot, create: true);
        using var key = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        var v1 = V1 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "1.0.0", tree));
        File.WriteAllText(Path.Combine(tree, "bin/app"), "app v2");
        var v2 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "2.0.0", tree));

        var inventory = files.Select(f => new InventoryEntry(f.Key, f.Value)).ToList();
        foreach (var id in new[] { "dash-ok-1", "dash-ok-2" })
            await DeviceAsync(id, "check-in", new CheckInRequest("acme", v1.VersionId, v1.InventoryDigest, inventory, "1.0"));
        await DeviceAsync("dash-new", "check-in", new CheckInRequest("acme", v2.VersionId, v2.InventoryDigest, null, "1.0",
            Attributes: new Dictionary<string, string> { ["site"] = "lab-7" }));
        var damaged = inventory.Select(f => f.Path == "bin/app" ? f with { Sha256 = new string('0', 64) } : f).ToList();
        await DeviceAsync("dash-broken", "check-in", new CheckInRequest("acme", v1.VersionId, "damaged", damaged, "1.0"));
        await DeviceAsync("dash-broken", "failure", new FailureReport(v1.VersionId, "verify", FailureReason, 1));
        // The registry read model follows the journal: 4 check-ins + 1 failure.
        await WaitForAsync("/admin/v1/devices?status=Failed", "dash-broken", 4);

        using (var create = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/rollouts"))
        {
            create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            create.Content = JsonContent.Create(new
            {
                id = RolloutId, product = "acme", version = "2.0.0",
                selector = new { deviceIds = new[] { "dash-ok-1", "dash-ok-2" } },
                waves = new object[] { new { count = 1 }, new { percent = 100 } },
            });
            using var res = await Node.Http.SendAsync(create);
            Assert.True(res.IsSuccessStatusCode, await res.Content.ReadAsStringAsync());
        }
        await WaitForAsync("/admin/v1/devices?status=UpgradeAssigned", "dash-ok-1", 4);
        await SeedMoreAsync();
    }

    public const string RolloutId = "ro-dash";

    private async Task WaitForAsync(string query, string expected, int total)
    {
        for (var i = 0; i < 300; i++)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, query);
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
            using var res = await Node.Http.SendAsync(req);
            if ((await res.Content.ReadAsStringAsync()).Contains(expected) && await TotalAsync() == total) return;
            await Task.Delay(50);
        }
        throw new TimeoutException($"registry did not show {expected} for {query} within 15 s");
    }

    private async Task<int> TotalAsync()
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/devices");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
        using var res = await Node.Http.SendAsync(req);
        return System.Text.Json.JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetProperty("total").GetInt32();
    }

    private readonly Dictionary<string, string> _secrets = new();

    /// <summary>A signed device request (provisioning the device on first use).</summary>
    protected async Task DeviceAsync(string id, string route, object body)
    {
        if (!_secrets.TryGetValue(id, out var secret)) _secrets[id] = secret = await Node.ProvisionAsync(id);
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{id}/{route}") { Content = JsonContent.Create(body, body.GetType()) };
        DeviceSigning.SignAs(req, id, secret);
        using var res = await Node.Http.SendAsync(req);
        Assert.True(res.IsSuccessStatusCode, $"{route} {id}: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
    }

    public async Task DisposeAsync() => await Node.DisposeAsync();
}
