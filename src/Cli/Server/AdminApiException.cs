namespace Orchestrator.Cli.Server;

/// <summary>The admin API refused or failed a request; carries the exit code scripts see and the server's error code.</summary>
/// <param name="exitCode">One of <see cref="CommandLine.ExitCodes"/>.</param>
/// <param name="error">Machine-readable code (the server's, e.g. <c>token_invalid</c>, or ours, e.g. <c>unreachable</c>).</param>
/// <param name="message">What happened and the fix.</param>
public sealed class AdminApiException(int exitCode, string error, string message) : Exception(message)
{
    /// <summary>Exit code of the process.</summary>
    public int ExitCode { get; } = exitCode;

    /// <summary>Machine-readable error code.</summary>
    public string Error { get; } = error;
}
