using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Hosting;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>The node process is killed with SIGKILL in the middle of a rollout and restarted on the same SQLite data.</summary>
public sealed class NodeKillTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Node_killed_mid_rollout_loses_no_acknowledged_device_state_and_the_rollout_completes()
    {
        using var dir = new TempDir();
        var data = dir.Sub("data");
        var storeRoot = dir.Sub("store");
        var port = FreePort();
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = $"http://127.0.0.1:{port}", ["Node:DataDirectory"] = data, ["Node:StoreRoot"] = storeRoot,
        };
        using var store = new TestStore(storeRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var fleetDir = new TempDir();
        var acknowledged = new ConcurrentDictionary<string, long>();
        using var fleet = new FleetSimulator(new SimulationOptions
        {
            Devices = 8, Gateway = $"http://127.0.0.1:{port}/", Root = fleetDir.Path, Product = "acme", ContentKey = store.ContentKey.ToBytes(),
            TrustRoot = store.SigningKey.PublicKey.ToBytes(), Concurrency = 2, CheckInIntervalSeconds = 0.3, StartSpreadSeconds = 0.5,
            Download = NetworkFaultTests.FastRetries with { BackoffCapMilliseconds = 500 }, Seed = 2,
        })
        { CompletionAcknowledged = (id, report) => acknowledged[id] = report.InstalledVersionId };

        // The rollout's assignments are made (and persisted) by a node in this process, which then shuts down.
        await using (var setup = await NodeUnderTest.StartAsync(overrides))
        {
            await fleet.PrepareAsync((id, _) => setup.ProvisionAsync(id), CancellationToken.None);
            foreach (var d in fleet.Devices) await setup.AssignAsync(d.DeviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        }

        var node = await NodeProcess.StartAsync(port, data, storeRoot);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(55));
        var run = fleet.RunAsync(TimeSpan.FromMilliseconds(100), null, s => s.AtLeast(v1.VersionId) == s.Devices, timeout.Token);
        while (acknowledged.Count < 2 && !run.IsCompleted) await Task.Delay(20, timeout.Token);
        node.Kill();
        var beforeKill = acknowledged.Count;
        output.WriteLine($"killed the node after {beforeKill} acknowledged completion(s)");
        Assert.True(beforeKill < fleet.Devices.Count, "every device finished before the kill: the test exercised nothing");

        node = await NodeProcess.StartAsync(port, data, storeRoot);
        var final = await run;
        node.Kill();
        Assert.Equal(fleet.Devices.Count, final.AtLeast(v1.VersionId));

        // Read the persisted state back with a fresh node on the same data.
        await using var check = await NodeUnderTest.StartAsync(overrides);
        foreach (var d in fleet.Devices)
        {
            var state = await check.StateAsync(d.DeviceId);
            output.WriteLine($"{d.DeviceId}: {state.Status} {state.InstalledVersionId}");
            Assert.Equal(v1.VersionId, state.InstalledVersionId);
            // Completed, or Idle once a later check-in found nothing more to do: either way the install is on record.
            Assert.Contains(state.Status, new[] { DeviceStatus.Completed, DeviceStatus.Idle });
            Assert.Null(state.Work);
        }
        Assert.Equal(fleet.Devices.Count, acknowledged.Count);
        Assert.All(acknowledged.Values, v => Assert.Equal(v1.VersionId, v));
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}

/// <summary>The real node executable (orchestrator.dll) as a child process.</summary>
internal sealed class NodeProcess
{
    private readonly Process _process;
    private NodeProcess(Process p) => _process = p;

    public static async Task<NodeProcess> StartAsync(int port, string data, string store)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(typeof(NodeApp).Assembly.Location);
        var token = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(NodeUnderTest.OperateToken)));
        foreach (var a in new[]
                 {
                     $"--Urls=http://127.0.0.1:{port}", $"--Node:DataDirectory={data}", $"--Node:StoreRoot={store}", "--Node:Port=0",
                     "--Admin:Tokens:0:Name=e2e", $"--Admin:Tokens:0:Sha256={token}", "--Admin:Tokens:0:Scopes:0=read",
                     "--Logging:LogLevel:Default=Warning",
                 })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; ; i++)
        {
            try
            {
                using var r = await http.GetAsync($"http://127.0.0.1:{port}/health/ready");
                if (r.IsSuccessStatusCode) return new NodeProcess(p);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (p.HasExited) throw new InvalidOperationException($"node process exited with {p.ExitCode}");
            if (i > 300) { p.Kill(); throw new TimeoutException("node process not ready within 30 s"); }
            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no flushing.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
    }
}
