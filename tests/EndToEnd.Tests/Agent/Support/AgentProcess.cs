using System.Diagnostics;
using Orchestrator.DeviceAgent;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>Runs the real <c>orch-agent</c> binary as a child process.</summary>
public static class AgentProcess
{
    public sealed record Result(int ExitCode, string Output, string Error);

    public static async Task<Result> RunAsync(IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null)
    {
        var dll = typeof(AgentCommandLine).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        psi.Environment.Remove("ORCH_AGENT_CRASH_AT");
        if (env?.TryGetValue("ORCH_AGENT_CRASH_AT", out var crash) == true) psi.Environment["ORCH_AGENT_CRASH_AT"] = crash;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"orch-agent {string.Join(' ', args)} did not finish: {await stdout}{await stderr}");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }
}
