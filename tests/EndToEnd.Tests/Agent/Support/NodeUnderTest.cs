using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>
/// A real single node (all roles, SQLite journal, filesystem store, Kestrel on 127.0.0.1:0, Akka on port 0) in a
/// temp folder, for agent end-to-end tests.
/// </summary>
public sealed class NodeUnderTest : IAsyncDisposable
{
    public const string OperateToken = AdminToken;
    private const string AdminToken = "agent-e2e-operate-token-0123456789abcdef012345";
    private readonly Dictionary<string, string?> _settings;
    private readonly TempDir _dir;
    private WebApplication _app;

    public string BaseUrl { get; }
    public string StoreRoot { get; }
    public HttpClient Http { get; }

    private NodeUnderTest(WebApplication app, TempDir dir, string baseUrl, string storeRoot, Dictionary<string, string?> settings)
    {
        _app = app;
        _dir = dir;
        _settings = settings;
        BaseUrl = baseUrl;
        StoreRoot = storeRoot;
        Http = new HttpClient { BaseAddress = new Uri(baseUrl) };
    }

    public static async Task<NodeUnderTest> StartAsync(IDictionary<string, string?>? overrides = null)
    {
        var dir = new TempDir();
        var store = dir.Folder("store");
        var settings = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Node:DataDirectory"] = dir.Folder("data"),
            ["Node:StoreRoot"] = store,
            ["Node:Port"] = "0",
            ["Admin:Tokens:0:Name"] = "agent-e2e",
            ["Admin:Tokens:0:Sha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(AdminToken))),
            ["Admin:Tokens:0:Scopes:0"] = "read",
            ["Admin:Tokens:0:Scopes:1"] = "operate",
            ["Logging:LogLevel:Default"] = "Warning",
            [RunningNode.BusyRuleOff.Key] = RunningNode.BusyRuleOff.Value,
        };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>()) settings[k] = v;
        var app = NodeApp.Build([], c => c.AddInMemoryCollection(settings));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var node = new NodeUnderTest(app, dir, address.TrimEnd('/') + "/", store, settings);
        await node.UntilReadyAsync();
        return node;
    }

    /// <summary>
    /// Stops the node and starts it again on the same data, store and HTTP address (agents keep their configuration):
    /// what an operator's restart does. The new node rebuilds everything in memory from the journal.
    /// </summary>
    public async Task RestartAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        var settings = new Dictionary<string, string?>(_settings) { ["Urls"] = BaseUrl.TrimEnd('/') };
        _app = NodeApp.Build([], c => c.AddInMemoryCollection(settings));
        await _app.StartAsync();
        await UntilReadyAsync();
    }

    private async Task UntilReadyAsync()
    {
        for (var i = 0; ; i++)
        {
            try
            {
                using var r = await Http.GetAsync("health/ready");
                if (r.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) when (i < 400)
            {
                // A connection pooled from before a restart.
            }
            if (i > 400) throw new TimeoutException("node did not become ready within 20 s");
            await Task.Delay(50);
        }
    }

    /// <summary>Provisions a device credential through the admin API (replacing one with <paramref name="rotate"/>); returns the secret.</summary>
    public async Task<string> ProvisionAsync(string deviceId, bool rotate = false)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"admin/v1/devices/{deviceId}/credential");
        if (rotate) req.Content = JsonContent.Create(new { rotate = true });
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using var res = await Http.SendAsync(req);
        res.EnsureSuccessStatusCode();
        return (await res.Content.ReadFromJsonAsync<ProvisionResponse>(HttpProblems.Json))!.Secret;
    }

    /// <summary>Assigns a release to a device through its sharded actor (what a rollout wave does).</summary>
    public async Task AssignAsync(string deviceId, string product, string version, long versionId, string manifestPath)
    {
        var region = await _app.Services.GetRequiredService<IRequiredActor<DeviceShardRegion>>().GetAsync();
        var answer = await region.Ask<object>(new AssignTarget(deviceId, product, version, versionId, manifestPath, "agent-e2e"), TimeSpan.FromSeconds(10));
        Assert.IsType<DeviceCommandAccepted>(answer);
    }

    public async Task<DeviceState> StateAsync(string deviceId)
    {
        var region = await _app.Services.GetRequiredService<IRequiredActor<DeviceShardRegion>>().GetAsync();
        return (DeviceState)await region.Ask<object>(new GetDeviceState(deviceId), TimeSpan.FromSeconds(10));
    }

    /// <summary>Ids of the device actors live in this node's shard region (listing them starts none; the process-wide
    /// gauge would also count other tests' nodes).</summary>
    public async Task<IReadOnlyList<string>> LiveDeviceIdsAsync()
    {
        var region = await _app.Services.GetRequiredService<IRequiredActor<DeviceShardRegion>>().GetAsync();
        var state = await region.Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(10));
        return state.Shards.SelectMany(s => s.EntityIds).ToList();
    }

    /// <summary>How many device actors this node hosts now.</summary>
    public async Task<int> LiveActorsAsync() => (await LiveDeviceIdsAsync()).Count;

    /// <summary>True while the device's actor is live in this node's shard region (asking its state would start it, this does not).</summary>
    public async Task<bool> IsLiveAsync(string deviceId) => (await LiveDeviceIdsAsync()).Contains(deviceId);

    /// <summary>The node's SQLite device journal (journal, tags and snapshot tables), for tests that read what was written.</summary>
    public string JournalFile => Path.Combine(_settings["Node:DataDirectory"]!, "devices.db");

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _dir.Dispose();
    }
}
