namespace Orchestrator.Cli.CommandLine;

/// <summary>One <c>--switch</c> a command accepts.</summary>
/// <param name="Name">Name without the dashes, e.g. <c>store</c>.</param>
/// <param name="ValueName">Placeholder for its value (e.g. <c>DIR</c>); null for a flag without value.</param>
/// <param name="Description">One line of help.</param>
/// <param name="Required">Whether the command refuses to run without it.</param>
public sealed record SwitchSpec(string Name, string? ValueName, string Description, bool Required = false)
{
    /// <summary>True for flags such as <c>--json</c>.</summary>
    public bool IsFlag => ValueName is null;
}

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
    /// <summary>Usage line, e.g. <c>orch store gc --store DIR [--keep-last N]</c>.</summary>
    public string Usage =>
        $"orch {Palette} {Name}" +
        string.Concat(Switches.Select(s =>
        {
            var text = s.IsFlag ? $"--{s.Name}" : $"--{s.Name} {s.ValueName}";
            return s.Required ? $" {text}" : $" [{text}]";
        })) +
        string.Concat(Positionals.Select(p => $" {p}"));
}

/// <summary>A parsed command line for one command, plus where to write.</summary>
public sealed class CommandInvocation(CommandSpec spec, IReadOnlyDictionary<string, string?> switches, IReadOnlyList<string> positionals, CliConsole console)
{
    /// <summary>The command being run.</summary>
    public CommandSpec Spec { get; } = spec;

    /// <summary>Output streams and terminal detection.</summary>
    public CliConsole Console { get; } = console;

    /// <summary>Positional arguments in order.</summary>
    public IReadOnlyList<string> Positionals { get; } = positionals;

    /// <summary>True when <c>--json</c> was given.</summary>
    public bool Json => Has("json");

    /// <summary>True when the switch (flag or valued) was given.</summary>
    public bool Has(string name) => switches.ContainsKey(name);

    /// <summary>A required switch's value (the parser has already enforced presence).</summary>
    public string Required(string name) => switches.TryGetValue(name, out var v) && v is not null
        ? v
        : throw new UsageException($"Missing --{name}. Usage: {Spec.Usage}");

    /// <summary>An optional switch's value, or null.</summary>
    public string? Optional(string name) => switches.TryGetValue(name, out var v) ? v : null;

    /// <summary>An optional integer switch; a malformed value is a usage error naming the switch.</summary>
    public long? OptionalLong(string name, long min = long.MinValue, long max = long.MaxValue)
    {
        var text = Optional(name);
        if (text is null) return null;
        if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new UsageException($"--{name} '{text}' is not a whole number in {min}..{max}.");
        return value;
    }
}
