using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Messages.Protocol;
using Orchestrator.TestSupport;

namespace Orchestrator.Cli.Tests.Support;

/// <summary>
/// A real node for the server-backed commands: Kestrel on 127.0.0.1:0, Akka on port 0, SQLite journal and store in a
/// temp folder, the real sharded device actors. Tokens: <see cref="OperateToken"/> (read+operate), <see cref="ReadToken"/>.
/// Seeded through orch itself: acme 1.0.0 and 2.0.0 published into the node's store, three devices provisioned and
/// checked in (fleet-a on 1.0.0 and idle, fleet-b failed a repair with "disk full", fleet-c on 2.0.0 and idle).
/// </summary>
public sealed class LiveNode : IAsyncLifetime
{
    public const string OperateToken = "cli-operate-token-0123456789abcdef0123456789";
    public const string ReadToken = "cli-read-token-0123456789abcdef0123456789abcd";

    private RunningNode _node = null!;

    public CliHarness Cli { get; } = new();
    public string Root => Cli.Root;
    public string StoreRoot => Path.Combine(Root, "node-store");
    public Uri BaseAddress => _node.BaseAddress;
    public HttpClient Http => _node.Http;
    public IServiceProvider Services => _node.Services;
    public Dictionary<string, string> Secrets { get; } = new();
    public (long VersionId, string Digest) V1 { get; private set; }
    public (long VersionId, string Digest) V2 { get; private set; }
    public Dictionary<string, string> V1Files { get; } = new();

    public async Task InitializeAsync()
    {
        _node = await RunningNode.StartAsync(RunningNode.Settings(Path.Combine(Root, "node-data"), StoreRoot, OperateToken, ReadToken));
        await SeedAsync();
    }

    private async Task SeedAsync()
    {
        Assert.Equal(0, (await Cli.Orch("keys", "init", "--dir", Cli.Keys)).ExitCode);
        var tree = Path.Combine(Root, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        void Write(string path, string text)
        {
            File.WriteAllText(Path.Combine(tree, path), text);
            V1Files[path] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        }
        Write("bin/app", "app v1");
        Write("config.ini", "x=1");
        var v1 = await Cli.Orch("publish", "--store", StoreRoot, "--keys", Cli.Keys, "--product", "acme", "--version", "1.0.0", "--json", tree);
        Assert.Equal(0, v1.ExitCode);
        V1 = (v1.Json.GetProperty("versionId").GetInt64(), v1.Json.GetProperty("inventoryDigest").GetString()!);
        File.WriteAllText(Path.Combine(tree, "bin/app"), "app v2");
        var v2 = await Cli.Orch("publish", "--store", StoreRoot, "--keys", Cli.Keys, "--product", "acme", "--version", "2.0.0", "--channel", "beta", "--json", tree);
        Assert.Equal(0, v2.ExitCode);
        V2 = (v2.Json.GetProperty("versionId").GetInt64(), v2.Json.GetProperty("inventoryDigest").GetString()!);
        // The channel file seeds the node's channel "beta"; the fleet below is in "stable", which has no release, so its
        // devices keep the states this fixture gives them (a stable channel at 2.0.0 would tell fleet-a to upgrade).

        foreach (var id in new[] { "fleet-a", "fleet-b", "fleet-c" })
        {
            var run = await Orch("device", "provision", id, "--product", "acme", "--tags", id == "fleet-c" ? "canary,eu" : "eu", "--json");
            Assert.True(run.ExitCode == 0, run.Error);
            Secrets[id] = run.Json.GetProperty("secret").GetString()!;
        }
        var inventory = V1Files.Select(f => new InventoryEntry(f.Key, f.Value)).ToList();
        Assert.Equal(UpdateAction.None, (await CheckInAsync("fleet-a", new CheckInRequest("acme", V1.VersionId, V1.Digest, inventory, "1.0"))).Action);
        var damaged = inventory.Select(f => f.Path == "config.ini" ? f with { Sha256 = new string('0', 64) } : f).ToList();
        Assert.Equal(UpdateAction.Repair, (await CheckInAsync("fleet-b", new CheckInRequest("acme", V1.VersionId, "damaged", damaged, "1.0"))).Action);
        using (var f = await DevicePostAsync("fleet-b", "failure", new FailureReport(V1.VersionId, "install", "disk full", 1)))
            Assert.True(f.IsSuccessStatusCode, await f.Content.ReadAsStringAsync());
        Assert.Equal(UpdateAction.None, (await CheckInAsync("fleet-c", new CheckInRequest("acme", V2.VersionId, V2.Digest, null, "1.0"))).Action);
        // Registered + checked in for fleet-a and fleet-c, plus the failure of fleet-b: 7 journal events.
        await WaitForRegistryAsync(7);
    }

    /// <summary>Waits until the registry read model (which follows the journal) has applied <paramref name="events"/> events.</summary>
    public async Task WaitForRegistryAsync(long events)
    {
        for (var i = 0; i < 200; i++)
        {
            var run = await Orch("device", "list", "--json");
            if (run.ExitCode == 0 && run.Json.GetProperty("eventsApplied").GetInt64() >= events) return;
            await Task.Delay(50);
        }
        throw new TimeoutException($"The device registry did not apply {events} events within 10 s.");
    }

    public async Task<CheckInResponse> CheckInAsync(string deviceId, CheckInRequest request)
    {
        using var res = await DevicePostAsync(deviceId, "check-in", request);
        Assert.True(res.IsSuccessStatusCode, $"check-in: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
        return (await res.Content.ReadFromJsonAsync<CheckInResponse>(new JsonSerializerOptions(JsonSerializerDefaults.Web)))!;
    }

    public async Task<HttpResponseMessage> DevicePostAsync(string deviceId, string route, object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/{route}") { Content = JsonContent.Create(body, body.GetType()) };
        await DeviceSigning.SignAsync(req, deviceId, Secrets[deviceId]);
        return await Http.SendAsync(req);
    }

    /// <summary>Runs orch against this node with the operate token (unless the arguments give their own).</summary>
    public Task<CliHarness.Run> Orch(params string[] args) =>
        Cli.Orch([.. args, .. args.Contains("--server") ? Array.Empty<string>() : ["--server", BaseAddress.ToString()],
            .. args.Contains("--token") ? Array.Empty<string>() : ["--token", OperateToken]]);

    public static string Sha256Hex(string s) => RunningNode.Sha256Hex(s);

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        Cli.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class LiveNodeCollection : ICollectionFixture<LiveNode>
{
    public const string Name = "live node";
}
