namespace Orchestrator.Cli.CommandLine;

/// <summary>Where a command reads and writes, whether stdout is an interactive terminal (progress bars, colours and
/// line editing only then), and where environment variables come from (tests pass their own).</summary>
/// <param name="Out">Standard output: results (human text or JSON).</param>
/// <param name="Error">Standard error: errors and hints.</param>
/// <param name="IsTerminal">True when stdout is a terminal.</param>
/// <param name="In">Standard input, read by the interactive mode; null means none.</param>
/// <param name="Environment">Environment lookup (ORCH_SERVER, ORCH_TOKEN); null means the process environment.</param>
public sealed record CliConsole(TextWriter Out, TextWriter Error, bool IsTerminal, TextReader? In = null, Func<string, string?>? Environment = null)
{
    /// <summary>The process console.</summary>
    public static CliConsole System() => new(global::System.Console.Out, global::System.Console.Error, !global::System.Console.IsOutputRedirected,
        global::System.Console.In);

    /// <summary>True when keys can be read one by one (interactive line editing with tab completion).</summary>
    public bool KeyboardAttached => IsTerminal && In == global::System.Console.In && !global::System.Console.IsInputRedirected;

    /// <summary>Value of an environment variable.</summary>
    public string? GetEnvironment(string name) => (Environment ?? global::System.Environment.GetEnvironmentVariable)(name);
}
