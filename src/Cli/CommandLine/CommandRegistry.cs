namespace Orchestrator.Cli.CommandLine;

/// <summary>
/// The palettes and their commands, plus top-level aliases (e.g. <c>orch publish</c> = <c>orch release publish</c>).
/// Parses <c>orch &lt;palette&gt; &lt;command&gt; --switch value [--switch=value] [--flag] POSITIONAL...</c>.
/// </summary>
public sealed class CommandRegistry
{
    private readonly List<CommandSpec> _commands = [];
    private readonly Dictionary<string, (string Palette, string Command)> _aliases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _paletteSummaries = new(StringComparer.Ordinal);

    /// <summary>Every registered command.</summary>
    public IReadOnlyList<CommandSpec> Commands => _commands;

    /// <summary>Declares a palette and its one-line description.</summary>
    public CommandRegistry Palette(string name, string summary)
    {
        _paletteSummaries[name] = summary;
        return this;
    }

    /// <summary>Declares a palette unless it exists (a palette may hold local and server-backed commands).</summary>
    public CommandRegistry DeclarePaletteIfAbsent(string name, string summary)
    {
        _paletteSummaries.TryAdd(name, summary);
        return this;
    }

    /// <summary>Declared palettes and their summaries.</summary>
    public IReadOnlyDictionary<string, string> Palettes => _paletteSummaries;

    /// <summary>Adds a command.</summary>
    public CommandRegistry Add(CommandSpec spec)
    {
        if (!_paletteSummaries.ContainsKey(spec.Palette))
            throw new InvalidOperationException($"Palette '{spec.Palette}' is not declared.");
        if (_commands.Any(c => c.Palette == spec.Palette && c.Name == spec.Name))
            throw new InvalidOperationException($"Command '{spec.Palette} {spec.Name}' is registered twice.");
        _commands.Add(spec);
        return this;
    }

    /// <summary>Makes <c>orch &lt;alias&gt;</c> run <c>orch &lt;palette&gt; &lt;command&gt;</c>.</summary>
    public CommandRegistry Alias(string alias, string palette, string command)
    {
        _aliases[alias] = (palette, command);
        return this;
    }

    /// <summary>Result of parsing: a command to run, or help text to print.</summary>
    public sealed record Parsed(CommandSpec? Command, ParsedArguments? Arguments, string? Help);

    /// <summary>Parses <paramref name="args"/>; throws <see cref="UsageException"/> naming the problem.</summary>
    public Parsed Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0] is "help" or "--help" or "-h")
            return new Parsed(null, null, args.Count > 1 ? HelpFor(args[1], args.Count > 2 ? args[2] : null) : GeneralHelp());

        int rest;
        CommandSpec? spec;
        if (_aliases.TryGetValue(args[0], out var target))
        {
            spec = Find(target.Palette, target.Command);
            rest = 1;
        }
        else
        {
            var palette = args[0];
            if (!_paletteSummaries.ContainsKey(palette))
                throw new UsageException($"Unknown palette or command '{palette}'. Palettes: {string.Join(", ", _paletteSummaries.Keys)}. Run 'orch help'.");
            if (args.Count < 2 || args[1] is "--help" or "-h" or "help")
                return new Parsed(null, null, PaletteHelp(palette));
            spec = Find(palette, args[1]) ?? throw new UsageException(
                $"Unknown command '{args[1]}' in palette '{palette}'. Commands: {string.Join(", ", _commands.Where(c => c.Palette == palette).Select(c => c.Name))}.");
            rest = 2;
        }
        spec = spec ?? throw new InvalidOperationException("alias target missing");

        if (CommandGrammar.AsksForHelp(args, rest))
            return new Parsed(null, null, CommandHelp(spec));
        return new Parsed(spec, spec.Grammar.Parse(args, rest), null);
    }

    private CommandSpec? Find(string palette, string command) =>
        _commands.FirstOrDefault(c => c.Palette == palette && c.Name == command);

    private string GeneralHelp()
    {
        var lines = new List<string> { "orch - Orchestrator release and SRE command line", "", "Usage: orch [--server URL] [--token TOKEN] [--json] <palette> <command> [--switch value ...]", "", "Palettes:" };
        foreach (var (name, summary) in _paletteSummaries)
        {
            lines.Add($"  {name,-10} {summary}");
            foreach (var c in _commands.Where(c => c.Palette == name))
                lines.Add($"    {c.Name,-10} {c.Summary}");
        }
        if (_aliases.Count > 0)
        {
            lines.Add("");
            lines.Add("Shortcuts:");
            foreach (var (alias, target) in _aliases) lines.Add($"  orch {alias,-8} = orch {target.Palette} {target.Command}");
        }
        lines.Add("");
        lines.Add("Exit codes:");
        foreach (var (code, meaning) in ExitCodes.All) lines.Add($"  {code}  {meaning}");
        lines.Add("");
        lines.Add("Run 'orch <palette> <command> --help' for the switches of a command, or 'orch' alone (optionally with");
        lines.Add("--server URL --token TOKEN) for the interactive mode with the server's help and TAB completion.");
        lines.Add("Server-backed commands read ORCH_SERVER and ORCH_TOKEN when --server/--token are not given.");
        return string.Join(Environment.NewLine, lines);
    }

    private string HelpFor(string palette, string? command)
    {
        if (command is not null && Find(palette, command) is { } spec) return CommandHelp(spec);
        if (_aliases.TryGetValue(palette, out var target)) return CommandHelp(Find(target.Palette, target.Command)!);
        if (_paletteSummaries.ContainsKey(palette)) return PaletteHelp(palette);
        throw new UsageException($"No help for '{palette}': unknown palette. Run 'orch help'.");
    }

    private string PaletteHelp(string palette)
    {
        var lines = new List<string> { $"orch {palette} - {_paletteSummaries[palette]}", "", "Commands:" };
        foreach (var c in _commands.Where(c => c.Palette == palette))
            lines.Add($"  {c.Usage}{Environment.NewLine}      {c.Summary}");
        return string.Join(Environment.NewLine, lines);
    }

    private static string CommandHelp(CommandSpec spec)
    {
        var lines = new List<string> { $"Usage: {spec.Usage}", "", spec.Summary, "" };
        foreach (var s in spec.Switches)
            lines.Add($"  --{s.Name}{(s.IsFlag ? "" : " " + s.ValueName),-16} {s.Description}{(s.Required ? " (required)" : "")}");
        return string.Join(Environment.NewLine, lines);
    }
}
