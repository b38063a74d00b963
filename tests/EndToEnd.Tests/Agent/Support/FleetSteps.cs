using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Tests.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>What operator-driven fleet tests do over and over: provision a device with the real orch, run its real agent, wait for a view.</summary>
public static class FleetSteps
{
    /// <summary>How long a view may take to show what a test waits for (the registry follows the journal).</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    /// <summary>Reads until <paramref name="done"/> holds; fails naming <paramref name="what"/> and the last value after <see cref="Patience"/>.</summary>
    public static async Task<T> UntilAsync<T>(string what, Func<Task<T>> read, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow + Patience;
        T last;
        while (!done(last = await read()))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} did not happen within {Patience}; last: {last}");
            await Task.Delay(250);
        }
        return last;
    }

    /// <summary>One <c>orch-agent run --no-client</c> of <paramref name="d"/>; asserts its exit code.</summary>
    public static async Task<AgentProcess.Result> RunAgentAsync(TestDevice d, ITestOutputHelper log, int expectedExit = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        log.WriteLine($"[agent {d.Config.DeviceId} exit {r.ExitCode}]\n{r.Output}{r.Error}");
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    /// <summary>Provisions and registers a device of acme through the real orch (as an operator would) and builds its disk.</summary>
    public static async Task<TestDevice> ProvisionAsync(NodeUnderTest node, TestStore store, string id, ITestOutputHelper log,
        DownloadSettings? download = null, IReadOnlyDictionary<string, string>? attributes = null)
    {
        var secret = (await OrchProcess.OkAsync(node, log, "device", "provision", id, "--product", "acme", "--json")).Json.GetProperty("secret").GetString()!;
        return new TestDevice(node.BaseUrl, credential: secret, deviceId: id, contentKey: store.ContentKey.ToBytes(),
            trustRoot: store.SigningKey.PublicKey.ToBytes(), download: download, attributes: attributes);
    }
}
