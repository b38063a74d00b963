using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Deltas;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Deltas;

/// <summary>Rollout start → fleet-aware delta build → check-in offers the delta, through a real node (Kestrel, actors, SQLite, store).</summary>
public sealed class DeltaRolloutTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "orch-delta-rollout-" + Guid.NewGuid().ToString("N"));
    private readonly Dictionary<string, PublishResult> _releases = new();

    private string Keys => Path.Combine(_root, "keys");

    public async Task InitializeAsync()
    {
        KeyFiles.Generate(Keys);
        _node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Deltas:KeysDirectory"] = Keys,
            ["Deltas:MaxSources"] = "1",
            ["Deltas:Level"] = "3",
        }, realDevices: true);
        var store = FileSystemStore.Open(_node.StoreRoot, create: true);
        using var signing = KeyFiles.LoadSigningKey(Keys);
        var publisher = new Publisher(store, KeyFiles.LoadContentKey(Keys), signing);
        var app = new byte[400_000];
        new Random(5).NextBytes(app);
        foreach (var version in new[] { "1.0", "1.1", "2.0" })
        {
            for (var at = 10; at + 8 < app.Length; at += 2500) BitConverter.GetBytes(version.GetHashCode() + at).CopyTo(app, at);
            var tree = Path.Combine(_root, "tree-" + version);
            Directory.CreateDirectory(tree);
            File.WriteAllBytes(Path.Combine(tree, "app"), app);
            _releases[version] = publisher.Publish(new PublishRequest("acme", version, tree));
        }
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    private async Task<CheckInResponse> CheckIn(string deviceId, string secret, PublishResult installed)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/check-in")
        {
            Content = JsonContent.Create(new CheckInRequest("acme", installed.VersionId, installed.InventoryDigest, null, "1.0")),
        };
        DeviceSigning.SignAs(req, deviceId, secret);
        using var res = await _node.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        return (await res.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json))!;
    }

    private async Task<int> RegistryCount(string query)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/devices?" + query);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
        using var res = await _node.Http.SendAsync(req);
        return JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetProperty("total").GetInt32();
    }

    [Fact]
    public async Task Rollout_start_builds_the_delta_from_the_most_common_installed_version_of_its_devices_and_check_in_offers_it()
    {
        // Targeted: two devices on 1.0, one on 1.1. Not targeted: two more on 1.1 (most common fleet-wide, but not in this rollout).
        var fleet = new[] { ("d-1", "1.0"), ("d-2", "1.0"), ("d-3", "1.1"), ("x-1", "1.1"), ("x-2", "1.1") };
        var secrets = new Dictionary<string, string>();
        foreach (var (id, version) in fleet)
        {
            secrets[id] = await _node.ProvisionAsync(id);
            Assert.Equal(UpdateAction.None, (await CheckIn(id, secrets[id], _releases[version])).Action);
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await RegistryCount($"versionId={_releases["1.1"].VersionId}") < 3 || await RegistryCount($"versionId={_releases["1.0"].VersionId}") < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the device registry did not catch up");
            await Task.Delay(100);
        }

        var outcome = new TaskCompletionSource<DeltaPlanOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _node.Services.GetRequiredService<DeltaPrecomputer>().Completed += o => outcome.TrySetResult(o);
        using (var create = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/rollouts")
        {
            Content = JsonContent.Create(new { id = "ro-delta", product = "acme", version = "2.0", selector = new { deviceIds = new[] { "d-1", "d-2", "d-3" } } }),
        })
        {
            create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            using var res = await _node.Http.SendAsync(create);
            Assert.Equal(HttpStatusCode.Created, res.StatusCode);
        }

        var done = await outcome.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(done.Failed.Count == 0, string.Join("; ", done.Failed));
        Assert.Equal([("1.0", 2)], done.Sources);
        Assert.Equal(["deltas/acme/1.0/2.0.json"], done.Built);
        Assert.Empty(done.Failed);
        var store = FileSystemStore.Open(_node.StoreRoot, create: false);
        Assert.False(store.FileExists(StoreLayout.DeltaManifestPath("acme", "1.1", "2.0")));
        var delta = DeltaManifestSerializer.VerifyAndParse(store.ReadFile("deltas/acme/1.0/2.0.json")!, store.ReadFile("deltas/acme/1.0/2.0.json.sig")!,
            KeyFiles.LoadPublicKey(Keys));
        // The node keeps whichever of the whole-release stream and the per-file patch is fewer bytes; either codes the one changed file.
        Assert.Contains(Assert.Single(delta.Files).Method, new[] { DeltaMethod.Patch, DeltaMethod.Release });

        // The rollout assigns the target; a 1.0 device is offered the delta, the 1.1 device is not (none was built for it).
        CheckInResponse upgrade;
        deadline = DateTime.UtcNow.AddSeconds(30);
        while ((upgrade = await CheckIn("d-1", secrets["d-1"], _releases["1.0"])).Action != UpdateAction.Upgrade)
        {
            Assert.True(DateTime.UtcNow < deadline, "the rollout did not assign the target");
            await Task.Delay(200);
        }
        Assert.Equal("deltas/acme/1.0/2.0.json", upgrade.DeltaManifestPath);
        CheckInResponse other;
        while ((other = await CheckIn("d-3", secrets["d-3"], _releases["1.1"])).Action != UpdateAction.Upgrade)
        {
            Assert.True(DateTime.UtcNow < deadline, "the rollout did not assign the target");
            await Task.Delay(200);
        }
        Assert.Null(other.DeltaManifestPath);

        // Devices fetch it through the gateway's store routes like any store file.
        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/store/deltas/acme/1.0/2.0.json");
        DeviceSigning.SignAs(get, "d-1", secrets["d-1"]);
        using var served = await _node.Http.SendAsync(get);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(store.ReadFile("deltas/acme/1.0/2.0.json"), await served.Content.ReadAsByteArrayAsync());
        using var bad = new HttpRequestMessage(HttpMethod.Get, "/v1/store/deltas/acme/index/2.0.json"); // "index" is not a version
        DeviceSigning.SignAs(bad, "d-1", secrets["d-1"]);
        using var refused = await _node.Http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("invalid_store_path", (await refused.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);

        // A second rollout of the same target finds the delta already built.
        var second = new TaskCompletionSource<DeltaPlanOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _node.Services.GetRequiredService<DeltaPrecomputer>().Completed += o => { if (o.RolloutId == "ro-delta-2") second.TrySetResult(o); };
        using (var create = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/rollouts")
        {
            Content = JsonContent.Create(new { id = "ro-delta-2", product = "acme", version = "2.0", selector = new { deviceIds = new[] { "x-1", "x-2" } } }),
        })
        {
            create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            using var res = await _node.Http.SendAsync(create);
            Assert.Equal(HttpStatusCode.Created, res.StatusCode);
        }
        var again = await second.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal([("1.1", 2)], again.Sources);
        Assert.Equal(["deltas/acme/1.1/2.0.json"], again.Built);
    }
}
