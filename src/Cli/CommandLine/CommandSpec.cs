namespace Orchestrator.Cli.CommandLine;

/// <summary>
/// A command of a palette (<c>orch &lt;palette&gt; &lt;command&gt; --switch value ... [POSITIONAL]</c>). Server-backed
/// palettes added later declare themselves the same way.
/// </summary>
/// <param name="Palette">Palette name, e.g. <c>store</c>.</param>
/// <param name="Name">Command name, e.g. <c>verify</c>.</param>
/// <param name="Summary">One line of help.</param>
/// <param name="Switches">Accepted switches.</param>
/// <param name="Positionals">Names of positional arguments in order; a name in brackets (<c>[DEVICE]</c>) may be left out, only at the end.</param>
/// <param name="Handler">Runs the command; returns an exit code.</param>
public sealed record CommandSpec(
    string Palette,
    string Name,
    string Summary,
    IReadOnlyList<SwitchSpec> Switches,
    IReadOnlyList<string> Positionals,
    Func<CommandInvocation, CancellationToken, Task<int>> Handler)
{
    /// <summary>The grammar of its arguments (the parser every program of the product shares).</summary>
    public CommandGrammar Grammar => new($"orch {Palette} {Name}", Switches, Positionals);

    /// <summary>Usage line, e.g. <c>orch store gc --store DIR [--keep-last N]</c>.</summary>
    public string Usage => Grammar.Usage;
}

/// <summary>A parsed command line for one command, plus where to write.</summary>
public sealed class CommandInvocation(CommandSpec spec, ParsedArguments arguments, CliConsole console)
{
    /// <summary>The command being run.</summary>
    public CommandSpec Spec { get; } = spec;

    /// <summary>Output streams and terminal detection.</summary>
    public CliConsole Console { get; } = console;

    /// <summary>Positional arguments in order.</summary>
    public IReadOnlyList<string> Positionals => arguments.Positionals;

    /// <summary>True when <c>--json</c> was given.</summary>
    public bool Json => Has("json");

    /// <summary>True when the switch (flag or valued) was given.</summary>
    public bool Has(string name) => arguments.Has(name);

    /// <summary>A required switch's value (the parser has already enforced presence).</summary>
    public string Required(string name) => arguments.Required(name);

    /// <summary>An optional switch's value, or null.</summary>
    public string? Optional(string name) => arguments.Optional(name);

    /// <summary>An optional integer switch; a malformed value is a usage error naming the switch.</summary>
    public long? OptionalLong(string name, long min = long.MinValue, long max = long.MaxValue) => arguments.OptionalLong(name, min, max);
}
