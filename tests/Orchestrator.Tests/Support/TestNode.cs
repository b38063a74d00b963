using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Support;

/// <summary>
/// A real node (Kestrel on 127.0.0.1:0, Akka on port 0, SQLite and store in a temp folder) for HTTP tests.
/// Admin tokens: <see cref="OperateToken"/> (read+operate) and <see cref="ReadToken"/> (read only).
/// </summary>
public sealed class TestNode : IAsyncDisposable
{
    public const string OperateToken = "test-operate-token-0123456789abcdef0123456789";
    public const string ReadToken = "test-read-token-0123456789abcdef0123456789abcd";

    private readonly WebApplication _app;

    public string Root { get; }
    public string StoreRoot => Path.Combine(Root, "store");
    public Uri BaseAddress { get; }
    public RecordingDeviceGateway Devices { get; }
    public HttpClient Http { get; }
    public IServiceProvider Services => _app.Services;

    private TestNode(WebApplication app, string root, Uri baseAddress, RecordingDeviceGateway devices)
    {
        _app = app;
        Root = root;
        BaseAddress = baseAddress;
        Devices = devices;
        Http = new HttpClient { BaseAddress = baseAddress };
    }

    /// <summary>Starts a node; with <paramref name="realDevices"/> check-ins go to the real sharded device actors (SQLite journal).</summary>
    public static async Task<TestNode> StartAsync(IDictionary<string, string?>? overrides = null, bool realDevices = false)
    {
        var root = Path.Combine(Path.GetTempPath(), "orch-node-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var settings = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Node:DataDirectory"] = Path.Combine(root, "data"),
            ["Node:StoreRoot"] = Path.Combine(root, "store"),
            ["Node:Port"] = "0",
            ["Admin:Tokens:0:Name"] = "operator",
            ["Admin:Tokens:0:Sha256"] = Sha256Hex(OperateToken),
            ["Admin:Tokens:0:Scopes:0"] = "read",
            ["Admin:Tokens:0:Scopes:1"] = "operate",
            ["Admin:Tokens:1:Name"] = "viewer",
            ["Admin:Tokens:1:Sha256"] = Sha256Hex(ReadToken),
            ["Admin:Tokens:1:Scopes:0"] = "read",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (overrides is not null) foreach (var (k, v) in overrides) settings[k] = v;
        var devices = new RecordingDeviceGateway();
        var app = NodeApp.Build([], c => c.AddInMemoryCollection(settings), s =>
        {
            if (!realDevices) s.AddSingleton<IDeviceGateway>(devices);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var node = new TestNode(app, root, new Uri(address), devices);
        await node.WaitReadyAsync();
        return node;
    }

    private async Task WaitReadyAsync()
    {
        for (var i = 0; i < 200; i++)
        {
            using var r = await Http.GetAsync("/health/ready");
            if (r.IsSuccessStatusCode) return;
            await Task.Delay(50);
        }
        throw new TimeoutException("Node did not become ready within 10 s.");
    }

    /// <summary>Provisions a device through the admin API and returns its secret.</summary>
    public async Task<string> ProvisionAsync(string deviceId)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/admin/v1/devices/{deviceId}/credential");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", OperateToken);
        using var res = await Http.SendAsync(req);
        res.EnsureSuccessStatusCode();
        var body = await res.Content.ReadFromJsonAsync<Admin.ProvisionResponse>(HttpProblems.Json);
        return body!.Secret;
    }

    /// <summary>Writes a chunk file into the store (as the publisher would) and returns its id.</summary>
    public string WriteChunk(byte[] data)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(data));
        var dir = Path.Combine(StoreRoot, "chunks", id[..2]);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, id), data);
        return id;
    }

    public static AuthenticationHeaderValue Basic(string deviceId, string secret) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{deviceId}:{secret}")));

    public static string Sha256Hex(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
