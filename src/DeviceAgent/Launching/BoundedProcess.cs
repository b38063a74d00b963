using System.ComponentModel;
using System.Diagnostics;

namespace Orchestrator.DeviceAgent.Launching;

/// <summary>
/// Runs a child program of a release (an updater's self-test, a client's health check) with a time limit and collects
/// its output: a program that is still running at the limit is killed with all its children, so no check can hold the
/// agent or leave work behind in a tree that is about to be switched in.
/// </summary>
internal static class BoundedProcess
{
    /// <summary>What the program did.</summary>
    /// <param name="ExitCode">Its exit code; null when it was killed at the time limit.</param>
    /// <param name="Output">Its standard output followed by its standard error, trimmed.</param>
    public sealed record Outcome(int? ExitCode, string Output);

    /// <summary>Starts <paramref name="start"/> (output redirected) and waits at most <paramref name="limit"/>.</summary>
    /// <exception cref="Win32Exception">The program could not be started (missing, not executable).</exception>
    public static async Task<Outcome> RunAsync(ProcessStartInfo start, TimeSpan limit, CancellationToken ct)
    {
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var p = Process.Start(start) ?? throw new Win32Exception("not started");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(limit);
        try
        {
            await p.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            p.Kill(entireProcessTree: true);
            return new Outcome(null, "");
        }
        return new Outcome(p.ExitCode, (await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false)).Trim());
    }

    /// <summary><paramref name="text"/> cut to <paramref name="max"/> characters (marked) for a message.</summary>
    public static string Clip(string text, int max) => text.Length > max ? text[..max] + "…" : text;
}
