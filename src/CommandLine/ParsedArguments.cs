using System.Globalization;

namespace Orchestrator.CommandLine;

/// <summary>
/// A command line parsed by its <see cref="CommandGrammar"/>. Typed reads refuse a malformed value with a
/// <see cref="UsageException"/> that names the switch and the range it must be in.
/// </summary>
public sealed class ParsedArguments(CommandGrammar grammar, IReadOnlyDictionary<string, string?> switches, IReadOnlyList<string> positionals)
{
    /// <summary>The grammar these arguments were parsed with.</summary>
    public CommandGrammar Grammar { get; } = grammar;

    /// <summary>Switches given, by name without dashes; a flag's value is null.</summary>
    public IReadOnlyDictionary<string, string?> Switches { get; } = switches;

    /// <summary>Positional arguments in order.</summary>
    public IReadOnlyList<string> Positionals { get; } = positionals;

    /// <summary>True when the switch (flag or valued) was given.</summary>
    public bool Has(string name) => Switches.ContainsKey(name);

    /// <summary>An optional switch's value, or null.</summary>
    public string? Optional(string name) => Switches.TryGetValue(name, out var v) ? v : null;

    /// <summary>A switch's value; refused when it was not given.</summary>
    public string Required(string name) => Switches.TryGetValue(name, out var v) && v is not null
        ? v
        : throw new UsageException($"'{Grammar.Command}' needs --{name}. Usage: {Grammar.Usage}");

    /// <summary>An optional whole-number switch in <paramref name="min"/>..<paramref name="max"/>, or null when not given.</summary>
    public long? OptionalLong(string name, long min = long.MinValue, long max = long.MaxValue)
    {
        var text = Optional(name);
        if (text is null) return null;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new UsageException($"--{name} '{text}' is not a whole number{Range(min, max)}.");
        return value;
    }

    /// <summary>A whole-number switch in <paramref name="min"/>..<paramref name="max"/>, or <paramref name="fallback"/> when not given.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        (int)(OptionalLong(name, min, max) ?? fallback);

    /// <summary>An optional number switch of at least <paramref name="min"/> (exclusive when <paramref name="exclusiveMin"/>), or null.</summary>
    public double? OptionalDouble(string name, double min = double.MinValue, bool exclusiveMin = false)
    {
        var text = Optional(name);
        if (text is null) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value)
            || value < min || (exclusiveMin && value == min))
            throw new UsageException($"--{name} '{text}' is not a number {(exclusiveMin ? ">" : ">=")} {min.ToString(CultureInfo.InvariantCulture)}.");
        return value;
    }

    /// <summary>A number switch, or <paramref name="fallback"/> when not given.</summary>
    public double Double(string name, double fallback, double min = double.MinValue, bool exclusiveMin = false) =>
        OptionalDouble(name, min, exclusiveMin) ?? fallback;

    /// <summary>The positional argument at <paramref name="index"/>, or null when it was left out.</summary>
    public string? Positional(int index) => index < Positionals.Count ? Positionals[index] : null;

    /// <summary>The positional argument at <paramref name="index"/> as a whole number in range, or <paramref name="fallback"/> when left out.</summary>
    public long PositionalLong(int index, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        var text = Positional(index);
        if (text is null) return fallback;
        var name = index < Grammar.PositionalNames.Count ? Grammar.PositionalNames[index].Trim('[', ']') : $"argument {index + 1}";
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new UsageException($"{name} '{text}' is not a whole number{Range(min, max)}. Usage: {Grammar.Usage}");
        return value;
    }

    private static string Range(long min, long max) =>
        (min, max) switch
        {
            (long.MinValue or int.MinValue, long.MaxValue or int.MaxValue) => "",
            (_, long.MaxValue or int.MaxValue) => $" >= {min}",
            _ => $" in {min}..{max}",
        };
}
