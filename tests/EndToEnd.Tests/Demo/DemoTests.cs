using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Hosting;
using Xunit.Abstractions;
using Orchestrator.TestSupport;

namespace Orchestrator.EndToEnd.Tests.Demo;

/// <summary><c>orchestrator demo</c> as a newcomer runs it: the real executable, its terminal output, and what the node then reports.</summary>
public sealed class DemoTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Demo_installs_repairs_rolls_out_in_waves_and_updates_and_repairs_an_updater_then_leaves_the_node_up()
    {
        using var dir = new TempDir();
        var demoDir = Path.Combine(dir.Path, "demo");
        var port = LoopbackPort.Free();
        using var demo = Start("--dir", demoDir, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--devices", "6", "--damage", "2", "--interval", "0.5");
        var lines = new List<string>();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            while (true)
            {
                var line = await demo.StandardOutput.ReadLineAsync(timeout.Token)
                           ?? throw new Xunit.Sdk.XunitException($"the demo exited ({await ExitAsync(demo)}) before it was up:\n{string.Join('\n', lines)}\n{await demo.StandardError.ReadToEndAsync()}");
                lines.Add(line);
                output.WriteLine(line);
                if (line.StartsWith("The demo is up", StringComparison.Ordinal)) break;
            }
            var text = string.Join('\n', lines);
            Assert.Contains("Step 9/9", text);
            Assert.Contains("2 repair(s) done", text);
            Assert.DoesNotContain("did not complete", text);
            Assert.Contains("rollout demo-install: Completed", text);
            Assert.Contains("rollout demo-upgrade: Completed, wave 3/3", text);
            // The updater is rolled out like a product, self-tested, switched in, then repaired from each source.
            Assert.Contains("updater release: upgrade done: version 2.0.0", text);
            Assert.Contains("updater 2.0.0 (id ", text);
            Assert.Contains("passed its self-test and is now the free-zone updater and the hidden backup", text);
            Assert.Contains("rollout demo-updater: Completed", text);
            Assert.Contains("the launcher: updater restored from the hidden backup (version 2.0.0; 1 file(s): orch-agent)", text);
            Assert.Contains("the launcher: updater restored from the virtual zone's plain copy", text);
            Assert.Contains("demo-00000: updater intact (version 2.0.0)", text);

            // The node stays up and reports what the terminal said, to anyone holding the printed token.
            var token = (await File.ReadAllTextAsync(Path.Combine(demoDir, "node", "data", "admin-token"))).Trim();
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var view = JsonSerializer.Deserialize<RolloutView>(await http.GetStringAsync("admin/v1/rollouts/demo-upgrade"), AdminJson.Options)!;
            Assert.Equal(RolloutStatus.Completed, view.Status);
            Assert.Equal(3, view.Waves.Count);
            Assert.Equal(6, view.Waves.Sum(w => w.Succeeded));
            Assert.All(view.Waves, w => Assert.Equal(0, w.Failed + w.Pending + w.InProgress));
            var updater = JsonSerializer.Deserialize<RolloutView>(await http.GetStringAsync("admin/v1/rollouts/demo-updater"), AdminJson.Options)!;
            Assert.Equal(RolloutStatus.Completed, updater.Status);
            Assert.Equal(1, updater.Waves.Sum(w => w.Succeeded));
            var device = Path.Combine(demoDir, "devices", "demo-00000");
            Assert.Equal(UpdaterTree.DigestOf(Path.Combine(device, "free", ".orch-agent", "updater-release", "client")), UpdaterTree.DigestOf(Path.Combine(device, "free", "updater")));
            Assert.StartsWith("#!/bin/sh\necho \"demo updater 2.0.0", await File.ReadAllTextAsync(Path.Combine(device, "free", "updater", "orch-agent")));
            using var dashboard = await http.GetAsync("");
            Assert.Equal(HttpStatusCode.OK, dashboard.StatusCode);
        }
        finally
        {
            if (!demo.HasExited) demo.Kill();
        }
    }

    [Theory]
    [InlineData("--devices 20000", "--devices 20000 is more than the demo's 10000")]
    [InlineData("--damage 9 --devices 4", "--damage '9' is not a whole number in 0..4")]
    [InlineData("--interval 0", "--interval '0' is not a number > 0")]
    [InlineData("--colour red", "'--colour' is not an option of 'orchestrator demo'")]
    public async Task Demo_refuses_bad_options_before_starting_anything(string args, string message)
    {
        using var dir = new TempDir();
        var demoDir = Path.Combine(dir.Path, "demo");
        using var demo = Start([.. args.Split(' '), "--dir", demoDir]);
        var stderr = await demo.StandardError.ReadToEndAsync();
        Assert.Equal(2, await ExitAsync(demo));
        Assert.Contains(message, stderr);
        Assert.Contains("usage: orchestrator demo", stderr);
    }

    [Fact]
    public async Task Demo_does_not_replace_a_folder_it_did_not_create()
    {
        using var dir = new TempDir();
        var precious = Path.Combine(dir.Path, "precious.txt");
        await File.WriteAllTextAsync(precious, "keep me");
        using var demo = Start("--dir", dir.Path);
        var stderr = await demo.StandardError.ReadToEndAsync();
        Assert.Equal(2, await ExitAsync(demo));
        Assert.Contains("is not a demo folder", stderr);
        Assert.Equal("keep me", await File.ReadAllTextAsync(precious));
    }

    private static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(typeof(NodeApp).Assembly.Location);
        psi.ArgumentList.Add("demo");
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static async Task<int> ExitAsync(Process p)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(timeout.Token);
        return p.ExitCode;
    }

}
