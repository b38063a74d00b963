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
    public sealed record Parsed(CommandSpec? Command, IReadOnlyDictionary<string, string?> Switches, IReadOnlyList<string> Positionals, string? Help);

    /// <summary>Parses <paramref name="args"/>; throws <see cref="UsageException"/> naming the problem.</summary>
    public Parsed Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0] is "help" or "--help" or "-h")
            return new Parsed(null, new Dictionary<string, string?>(), [], args.Count > 1 ? HelpFor(args[1], args.Count > 2 ? args[2] : null) : GeneralHelp());

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
                return new Parsed(null, new Dictionary<string, string?>(), [], PaletteHelp(palette));
            spec = Find(palette, args[1]) ?? throw new UsageException(
                $"Unknown command '{args[1]}' in palette '{palette}'. Commands: {string.Join(", ", _commands.Where(c => c.Palette == palette).Select(c => c.Name))}.");
            rest = 2;
        }
        spec = spec ?? throw new InvalidOperationException("alias target missing");

        var switches = new Dictionary<string, string?>(StringComparer.Ordinal);
        var positionals = new List<string>();
        for (var i = rest; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h")
                return new Parsed(null, switches, positionals, CommandHelp(spec));
            if (arg == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var body = arg[2..];
                string? inlineValue = null;
                var eq = body.IndexOf('=');
                if (eq >= 0) { inlineValue = body[(eq + 1)..]; body = body[..eq]; }
                var sw = spec.Switches.FirstOrDefault(s => s.Name == body)
                    ?? throw new UsageException($"Unknown switch '--{body}' for '{spec.Palette} {spec.Name}'. Usage: {spec.Usage}");
                if (switches.ContainsKey(sw.Name))
                    throw new UsageException($"Switch '--{sw.Name}' is given more than once; give it once.");
                if (sw.IsFlag)
                {
                    if (inlineValue is not null) throw new UsageException($"Switch '--{sw.Name}' takes no value.");
                    switches[sw.Name] = null;
                }
                else
                {
                    var value = inlineValue;
                    if (value is null)
                    {
                        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                            throw new UsageException($"Switch '--{sw.Name}' needs a value ({sw.ValueName}). Usage: {spec.Usage}");
                        value = args[++i];
                    }
                    if (value.Length == 0) throw new UsageException($"Switch '--{sw.Name}' has an empty value; give a {sw.ValueName}.");
                    switches[sw.Name] = value;
                }
            }
            else positionals.Add(arg);
        }
        foreach (var sw in spec.Switches.Where(s => s.Required && !switches.ContainsKey(s.Name)))
            throw new UsageException($"Missing required switch '--{sw.Name} {sw.ValueName}' ({sw.Description}). Usage: {spec.Usage}");
        var required = spec.Positionals.Count(p => !p.StartsWith('['));
        if (positionals.Count < required || positionals.Count > spec.Positionals.Count)
            throw new UsageException(spec.Positionals.Count == 0
                ? $"'{spec.Palette} {spec.Name}' takes no positional arguments, got '{string.Join(" ", positionals)}'. Usage: {spec.Usage}"
                : required == spec.Positionals.Count
                    ? $"'{spec.Palette} {spec.Name}' needs {string.Join(" ", spec.Positionals)} ({spec.Positionals.Count} argument(s)), got {positionals.Count}. Usage: {spec.Usage}"
                    : $"'{spec.Palette} {spec.Name}' takes {string.Join(" ", spec.Positionals)} ({required} to {spec.Positionals.Count} argument(s)), got {positionals.Count}. Usage: {spec.Usage}");
        return new Parsed(spec, switches, positionals, null);
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
