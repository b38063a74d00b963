using System.Security.Cryptography;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>Check-in decisions and reports through Kestrel, the gateway's manifest comparison and the real persistent device actors.</summary>
public sealed class DeviceActorsEndToEndTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private PublishResult _v1 = null!;
    private PublishResult _v2 = null!;
    private readonly Dictionary<string, string> _v1Files = new();
    private readonly string _tree = Path.Combine(Path.GetTempPath(), "orch-e2e-tree-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync(realDevices: true);
        Directory.CreateDirectory(Path.Combine(_tree, "bin"));
        void Write(string path, string text)
        {
            File.WriteAllText(Path.Combine(_tree, path), text);
            _v1Files[path] = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        }
        Write("bin/app", "app v1");
        Write("config.ini", "x=1");
        var store = FileSystemStore.Open(_node.StoreRoot, create: true);
        using var key = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        _v1 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "1.0.0", _tree));
        File.WriteAllText(Path.Combine(_tree, "bin/app"), "app v2");
        _v2 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "2.0.0", _tree));
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        try { Directory.Delete(_tree, true); } catch (IOException) { }
    }

    private async Task<HttpResponseMessage> PostAsync(string deviceId, string secret, string route, object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/{route}") { Content = JsonContent.Create(body, body.GetType()) };
        DeviceSigning.SignAs(req, deviceId, secret);
        return await _node.Http.SendAsync(req);
    }

    private async Task<CheckInResponse> CheckInAsync(string deviceId, string secret, CheckInRequest request)
    {
        using var res = await PostAsync(deviceId, secret, "check-in", request);
        Assert.True(res.StatusCode == HttpStatusCode.OK, $"check-in: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
        return (await res.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json))!;
    }

    private List<InventoryEntry> Inventory(Func<string, string, string>? tamper = null) =>
        _v1Files.Select(f => new InventoryEntry(f.Key, tamper?.Invoke(f.Key, f.Value) ?? f.Value)).ToList();

    [Fact]
    public async Task Intact_damaged_upgrade_and_reports_flow_through_the_device_actor()
    {
        var secret = await _node.ProvisionAsync("e2e-1");

        var intact = await CheckInAsync("e2e-1", secret, new CheckInRequest("acme", _v1.VersionId, _v1.InventoryDigest, Inventory(), "1.0"));
        Assert.Equal(UpdateAction.None, intact.Action);
        Assert.Null(intact.Grant);

        var damaged = Inventory((path, sha) => path == "config.ini" ? new string('0', 64) : sha);
        var repair = await CheckInAsync("e2e-1", secret, new CheckInRequest("acme", _v1.VersionId, "damaged-digest", damaged, "1.0"));
        Assert.Equal(UpdateAction.Repair, repair.Action);
        Assert.Equal(["config.ini"], repair.RepairFiles);
        Assert.Equal(_v1.ManifestPath, repair.ManifestPath);
        Assert.Equal(_v1.VersionId, repair.TargetVersionId);
        Assert.NotNull(repair.Grant);

        // A rollout assigns 2.0.0 (the rollout actors are a later issue: the test assigns through the region).
        var region = await _node.Services.GetRequiredService<IRequiredActor<DeviceShardRegion>>().GetAsync();
        var accepted = await region.Ask<object>(new AssignTarget("e2e-1", "acme", "2.0.0", _v2.VersionId, _v2.ManifestPath, "rollout-test"), TimeSpan.FromSeconds(10));
        Assert.IsType<DeviceCommandAccepted>(accepted);

        var upgrade = await CheckInAsync("e2e-1", secret, new CheckInRequest("acme", _v1.VersionId, _v1.InventoryDigest, Inventory(), "1.0"));
        Assert.Equal(UpdateAction.Upgrade, upgrade.Action);
        Assert.Equal(_v2.VersionId, upgrade.TargetVersionId);
        Assert.Equal("manifests/acme/2.0.0.json", upgrade.ManifestPath);
        Assert.Null(upgrade.RepairFiles);
        Assert.NotNull(upgrade.Grant);

        using (var p = await PostAsync("e2e-1", secret, "progress", new ProgressReport(_v2.VersionId, 10, 100, 1, 4))) Assert.Equal(HttpStatusCode.NoContent, p.StatusCode);
        using (var f = await PostAsync("e2e-1", secret, "failure", new FailureReport(_v2.VersionId, "download", "connection reset", 1)))
        {
            Assert.Equal(HttpStatusCode.NoContent, f.StatusCode);
            Assert.True(f.Headers.RetryAfter!.Delta!.Value.TotalSeconds >= 1);
        }
        using (var stale = await PostAsync("e2e-1", secret, "progress", new ProgressReport(_v1.VersionId, 10, 100, 1, 4)))
        {
            Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
            Assert.Equal("stale_target", (await stale.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        }
        using (var c = await PostAsync("e2e-1", secret, "completion", new CompletionReport(_v2.VersionId, _v2.InventoryDigest))) Assert.Equal(HttpStatusCode.NoContent, c.StatusCode);

        var state = (DeviceState)await region.Ask<object>(new GetDeviceState("e2e-1"), TimeSpan.FromSeconds(10));
        Assert.Equal(DeviceStatus.Completed, state.Status);
        Assert.Equal(_v2.VersionId, state.InstalledVersionId);

        var after = await CheckInAsync("e2e-1", secret, new CheckInRequest("acme", _v2.VersionId, _v2.InventoryDigest, null, "1.0"));
        Assert.Equal(UpdateAction.None, after.Action);
    }

    [Fact]
    public async Task Reports_without_work_are_409_and_unknown_products_404()
    {
        var secret = await _node.ProvisionAsync("e2e-2");
        using (var res = await PostAsync("e2e-2", secret, "completion", new CompletionReport(5, "d")))
        {
            Assert.Equal(HttpStatusCode.Conflict, res.StatusCode);
            Assert.Equal("no_active_work", (await res.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        }
        using (var res = await PostAsync("e2e-2", secret, "check-in", new CheckInRequest("nope", 0, "d", null, null)))
        {
            Assert.Equal(HttpStatusCode.NotFound, res.StatusCode);
            Assert.Equal("unknown_product", (await res.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        }
    }
}
