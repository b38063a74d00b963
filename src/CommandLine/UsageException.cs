namespace Orchestrator.CommandLine;

/// <summary>
/// The command line itself is wrong; the message names the argument and the fix. It is an
/// <see cref="ArgumentException"/> so a program that treats bad arguments and bad input alike needs one catch.
/// </summary>
public sealed class UsageException(string message) : ArgumentException(message);
