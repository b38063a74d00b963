namespace Orchestrator.Cli.CommandLine;

/// <summary>The command line itself is wrong (exit code <see cref="ExitCodes.Usage"/>); the message names the fix.</summary>
public sealed class UsageException(string message) : Exception(message);
