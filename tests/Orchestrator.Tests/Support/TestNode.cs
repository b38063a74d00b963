using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;

namespace Orchestrator.Node.Tests.Support;

/// <summary>
/// A real node (Kestrel on 127.0.0.1:0, Akka on port 0, SQLite and store in a temp folder) for HTTP tests.
/// Admin tokens: <see cref="OperateToken"/> (read+operate) and <see cref="ReadToken"/> (read only).
/// </summary>
public sealed class TestNode : IAsyncDisposable
{
    public const string OperateToken = "test-operate-token-0123456789abcdef0123456789";
    public const string ReadToken = "test-read-token-0123456789abcdef0123456789abcd";

    private readonly RunningNode _node;

    public string Root { get; }
    public string StoreRoot => Path.Combine(Root, "store");
    public Uri BaseAddress => _node.BaseAddress;
    public RecordingDeviceGateway Devices { get; }
    public HttpClient Http => _node.Http;
    public IServiceProvider Services => _node.Services;

    private TestNode(RunningNode node, string root, RecordingDeviceGateway devices)
    {
        _node = node;
        Root = root;
        Devices = devices;
    }

    /// <summary>Starts a node; with <paramref name="realDevices"/> check-ins go to the real sharded device actors (SQLite journal).</summary>
    public static async Task<TestNode> StartAsync(IDictionary<string, string?>? overrides = null, bool realDevices = false)
    {
        var root = Path.Combine(Path.GetTempPath(), "orch-node-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var settings = RunningNode.Settings(Path.Combine(root, "data"), Path.Combine(root, "store"), OperateToken, ReadToken, overrides);
        var devices = new RecordingDeviceGateway();
        var node = await RunningNode.StartAsync(settings, s =>
        {
            if (!realDevices) s.AddSingleton<IDeviceGateway>(devices);
        });
        return new TestNode(node, root, devices);
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

    public static string Sha256Hex(string s) => RunningNode.Sha256Hex(s);

    public async ValueTask DisposeAsync()
    {
        await _node.DisposeAsync();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
