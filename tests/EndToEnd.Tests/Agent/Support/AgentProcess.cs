using System.Diagnostics;
using Orchestrator.DeviceAgent;

namespace Orchestrator.EndToEnd.Tests.Agent.Support;

/// <summary>
/// Runs the real <c>orch-agent</c> binary as a child process: the published Native AOT executable named by
/// <c>ORCH_AGENT_BINARY</c> when it is set (CI publishes it first, so the tests exercise what devices run), else the
/// agent dll of this build under <c>dotnet</c>.
/// </summary>
public static class AgentProcess
{
    public sealed record Result(int ExitCode, string Output, string Error);

    /// <summary>The environment variable naming a published agent executable.</summary>
    public const string BinaryVariable = "ORCH_AGENT_BINARY";

    /// <summary>The published executable the tests run, or null to run this build's dll.</summary>
    public static string? Binary
    {
        get
        {
            var path = Environment.GetEnvironmentVariable(BinaryVariable);
            if (string.IsNullOrEmpty(path)) return null;
            return File.Exists(path) ? Path.GetFullPath(path)
                : throw new InvalidOperationException($"{BinaryVariable}={path} does not exist; publish the agent (dotnet publish src/DeviceAgent -r linux-x64 -c Release) or unset it");
        }
    }

    /// <summary>A start info for the agent with <paramref name="args"/>, output redirected.</summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var binary = Binary;
        var psi = new ProcessStartInfo(binary ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (binary is null) psi.ArgumentList.Add(typeof(AgentCommandLine).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>What <see cref="RunMeasuredAsync"/> saw of one agent run.</summary>
    /// <param name="WriteBytes">Bytes the agent caused to be written to storage (<c>write_bytes</c> of <c>/proc/&lt;pid&gt;/io</c>).</param>
    /// <param name="PeakRssKb">The agent's peak resident set, KiB (<c>/usr/bin/time</c> %M, from the kernel's maxrss).</param>
    /// <param name="WriteChars">Bytes the agent handed to <c>write</c>-family calls (<c>wchar</c>): independent of page
    /// sizes and writeback timing, so it is what a tight bound can hold; its log lines on stdout are in it too.</param>
    public sealed record Measured(Result Result, long WriteBytes, long PeakRssKb, long WriteChars);

    /// <summary>
    /// Runs the agent like <see cref="RunAsync"/> under <c>/usr/bin/time</c> and a shell: time reports the agent's peak
    /// RSS, and the shell prints its own I/O counters after reaping time (the kernel adds a reaped child's I/O to its
    /// parent's), so every byte the agent wrote before it exited is counted.
    /// </summary>
    public static async Task<Measured> RunMeasuredAsync(IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var inner = StartInfo(args);
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        const string script = "/usr/bin/time -f 'peak_rss_kb: %M' \"$0\" \"$@\"; rc=$?; grep -E '^(write_bytes|wchar):' /proc/$$/io >&2; exit $rc";
        foreach (var a in new[] { "-c", script, inner.FileName }.Concat(inner.ArgumentList))
            psi.ArgumentList.Add(a);
        var r = await RunAsync(psi, args, null, timeout);
        long Field(string name) => long.Parse(
            r.Error.Split('\n').Last(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);
        return new Measured(r, Field("write_bytes"), Field("peak_rss_kb"), Field("wchar"));
    }

    public static Task<Result> RunAsync(IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        RunAsync(StartInfo(args), args, env, timeout);

    private static async Task<Result> RunAsync(ProcessStartInfo psi, IEnumerable<string> args, IDictionary<string, string>? env, TimeSpan? timeout)
    {
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
