namespace Orchestrator.Cli.CommandLine;

/// <summary>Where a command writes, and whether stdout is an interactive terminal (progress bars only then).</summary>
/// <param name="Out">Standard output: results (human text or JSON).</param>
/// <param name="Error">Standard error: errors and hints.</param>
/// <param name="IsTerminal">True when stdout is a terminal.</param>
public sealed record CliConsole(TextWriter Out, TextWriter Error, bool IsTerminal)
{
    /// <summary>The process console.</summary>
    public static CliConsole System() => new(global::System.Console.Out, global::System.Console.Error, !global::System.Console.IsOutputRedirected);
}
