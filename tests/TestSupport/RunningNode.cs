using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Node.Hosting;

namespace Orchestrator.TestSupport;

/// <summary>
/// A real node in the test process: Kestrel on 127.0.0.1:0, Akka on port 0, SQLite journal and store under a folder
/// the caller owns, two admin tokens (read+operate and read-only). Test fixtures compose it so the node settings live
/// in one place.
/// </summary>
public sealed class RunningNode : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RunningNode(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        Http = new HttpClient(DeviceSigning.Handler()) { BaseAddress = baseAddress };
    }

    /// <summary>The node's HTTP address (gateway, admin API, dashboard).</summary>
    public Uri BaseAddress { get; }

    /// <summary>A client bound to <see cref="BaseAddress"/>, without credentials; it signs requests marked with <see cref="DeviceSigning.SignAs"/>.</summary>
    public HttpClient Http { get; }

    /// <summary>The node's services (actor system, options, gateways).</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Admission's busy rule off (<c>Admission:BusyQueueWaitMilliseconds</c> 0) for the nodes of the tests: on a machine
    /// running test suites side by side a new request often waits 5 ms, and the rule would send a test's agent that checks
    /// in again within a minute away for 30-60 s. The tests of the rule (CheckInStormTests, CheckInAdmissionTests) set it
    /// themselves, or remove it (a null override) to run with the shipped default.
    /// </summary>
    public static readonly KeyValuePair<string, string?> BusyRuleOff = new("Admission:BusyQueueWaitMilliseconds", "0");

    /// <summary><see cref="BusyRuleOff"/> as the node's environment variable (<c>ORCH_Admission__BusyQueueWaitMilliseconds</c>).</summary>
    public static string BusyRuleOffVariable => "ORCH_" + BusyRuleOff.Key.Replace(":", "__", StringComparison.Ordinal);

    /// <summary>The settings every test node starts from; <paramref name="overrides"/> win (a null one removes the setting).</summary>
    public static Dictionary<string, string?> Settings(string dataDirectory, string storeRoot, string operateToken, string readToken,
        IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Node:DataDirectory"] = dataDirectory,
            ["Node:StoreRoot"] = storeRoot,
            ["Node:Port"] = "0",
            ["Admin:Tokens:0:Name"] = "operator",
            ["Admin:Tokens:0:Sha256"] = Sha256Hex(operateToken),
            ["Admin:Tokens:0:Scopes:0"] = "read",
            ["Admin:Tokens:0:Scopes:1"] = "operate",
            ["Admin:Tokens:1:Name"] = "viewer",
            ["Admin:Tokens:1:Sha256"] = Sha256Hex(readToken),
            ["Admin:Tokens:1:Scopes:0"] = "read",
            ["Logging:LogLevel:Default"] = "Warning",
            [BusyRuleOff.Key] = BusyRuleOff.Value,
        };
        // A null override removes the setting, so the node runs with its shipped default.
        if (overrides is not null)
            foreach (var (key, value) in overrides)
                if (value is null) settings.Remove(key);
                else settings[key] = value;
        return settings;
    }

    /// <summary>Builds and starts a node with <paramref name="settings"/> and waits until /health/ready answers.</summary>
    public static async Task<RunningNode> StartAsync(IDictionary<string, string?> settings, Action<IServiceCollection>? services = null)
    {
        var app = NodeApp.Build([], c => c.AddInMemoryCollection(settings), services);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var node = new RunningNode(app, new Uri(address));
        try
        {
            await node.WaitReadyAsync();
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
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
        throw new TimeoutException("The node did not become ready within 10 s (GET /health/ready).");
    }

    /// <summary>Lower-case hex SHA-256 of a UTF-8 string, as admin token hashes are configured.</summary>
    public static string Sha256Hex(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    /// <summary>Stops the node (coordinated shutdown) and releases its client.</summary>
    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
