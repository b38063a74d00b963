using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>Runs the real <c>orch</c> command line as a child process against a node's admin API.</summary>
public static class OrchProcess
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public JsonElement Json => JsonDocument.Parse(Output).RootElement;
    }

    public static async Task<Result> RunAsync(NodeUnderTest node, ITestOutputHelper? log, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(typeof(Orchestrator.Cli.OrchCli).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["ORCH_SERVER"] = node.BaseUrl.TrimEnd('/');
        psi.Environment["ORCH_TOKEN"] = NodeUnderTest.OperateToken;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"orch {string.Join(' ', args)} did not finish: {await stdout}{await stderr}");
        }
        var result = new Result(p.ExitCode, await stdout, await stderr);
        log?.WriteLine($"$ orch {string.Join(' ', args)}  (exit {result.ExitCode})\n{result.Output}{result.Error}");
        return result;
    }

    /// <summary>Runs orch and requires exit code 0.</summary>
    public static async Task<Result> OkAsync(NodeUnderTest node, ITestOutputHelper? log, params string[] args)
    {
        var r = await RunAsync(node, log, args);
        Assert.True(r.ExitCode == 0, $"orch {string.Join(' ', args)} exited {r.ExitCode}: {r.Error}{r.Output}");
        return r;
    }
}

