namespace Orchestrator.CommandLine;

/// <summary>
/// What one command accepts: its switches and positional arguments, and the usage line its errors quote. Parses
/// <c>--switch value</c>, <c>--switch=value</c>, <c>--flag</c>, positionals and <c>--</c> (everything after it is
/// positional); an unknown or repeated switch, a missing value or required switch, or a wrong number of positionals is a
/// <see cref="UsageException"/> naming the argument.
/// </summary>
/// <param name="Command">Name the errors use, e.g. <c>orch store gc</c> or <c>simulate</c>.</param>
/// <param name="Switches">Accepted switches.</param>
/// <param name="Positionals">Names of positional arguments in order; a name in brackets (<c>[DEVICE]</c>) may be left out, only at the end.</param>
public sealed record CommandGrammar(string Command, IReadOnlyList<SwitchSpec> Switches, IReadOnlyList<string>? Positionals = null)
{
    /// <summary>Positional argument names (none when not given).</summary>
    public IReadOnlyList<string> PositionalNames => Positionals ?? [];

    /// <summary>Usage line, e.g. <c>orch store gc --store DIR [--keep-last N]</c>.</summary>
    public string Usage =>
        Command +
        string.Concat(Switches.Select(s =>
        {
            var text = s.IsFlag ? $"--{s.Name}" : $"--{s.Name} {s.ValueName}";
            return s.Required ? $" {text}" : $" [{text}]";
        })) +
        string.Concat(PositionalNames.Select(p => $" {p}"));

    /// <summary>True when <paramref name="args"/> from <paramref name="start"/> on ask for help (<c>--help</c> or <c>-h</c> before any <c>--</c>).</summary>
    public static bool AsksForHelp(IReadOnlyList<string> args, int start = 0)
    {
        for (var i = start; i < args.Count; i++)
        {
            if (args[i] == "--") return false;
            if (args[i] is "--help" or "-h") return true;
        }
        return false;
    }

    /// <summary>Parses <paramref name="args"/> from index <paramref name="start"/> on.</summary>
    public ParsedArguments Parse(IReadOnlyList<string> args, int start = 0)
    {
        var switches = new Dictionary<string, string?>(StringComparer.Ordinal);
        var positionals = new List<string>();
        for (var i = start; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                positionals.Add(arg);
                continue;
            }
            var body = arg[2..];
            string? inlineValue = null;
            var eq = body.IndexOf('=');
            if (eq >= 0) { inlineValue = body[(eq + 1)..]; body = body[..eq]; }
            var sw = Switches.FirstOrDefault(s => s.Name == body)
                ?? throw new UsageException($"'--{body}' is not an option of '{Command}'. Usage: {Usage}");
            if (switches.ContainsKey(sw.Name))
                throw new UsageException($"'--{sw.Name}' is given more than once; give it once.");
            if (sw.IsFlag)
            {
                if (inlineValue is not null) throw new UsageException($"'--{sw.Name}' takes no value.");
                switches[sw.Name] = null;
                continue;
            }
            var value = inlineValue;
            if (value is null)
            {
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new UsageException($"'--{sw.Name}' needs a value ({sw.ValueName}). Usage: {Usage}");
                value = args[++i];
            }
            if (value.Length == 0) throw new UsageException($"'--{sw.Name}' has an empty value; give a {sw.ValueName}.");
            switches[sw.Name] = value;
        }
        foreach (var sw in Switches.Where(s => s.Required && !switches.ContainsKey(s.Name)))
            throw new UsageException($"'{Command}' needs --{sw.Name} {sw.ValueName}{(sw.Description.Length > 0 ? $" ({sw.Description})" : "")}. Usage: {Usage}");
        var names = PositionalNames;
        var required = names.Count(p => !p.StartsWith('['));
        if (positionals.Count < required || positionals.Count > names.Count)
            throw new UsageException(names.Count == 0
                ? $"'{Command}' takes no positional arguments, got '{string.Join(" ", positionals)}'. Usage: {Usage}"
                : required == names.Count
                    ? $"'{Command}' needs {string.Join(" ", names)} ({names.Count} argument(s)), got {positionals.Count}. Usage: {Usage}"
                    : $"'{Command}' takes {string.Join(" ", names)} ({required} to {names.Count} argument(s)), got {positionals.Count}. Usage: {Usage}");
        return new ParsedArguments(this, switches, positionals);
    }
}
