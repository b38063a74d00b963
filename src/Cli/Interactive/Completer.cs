namespace Orchestrator.Cli.Interactive;

/// <summary>Tab completion of the interactive mode over a <see cref="CommandCatalog"/>.</summary>
public sealed class Completer(CommandCatalog catalog)
{
    /// <summary>Words of the shell itself.</summary>
    public static readonly IReadOnlyList<string> ShellWords = ["help", "exit"];

    /// <summary>Candidates for the word being typed at the end of <paramref name="line"/>, sorted.</summary>
    public IReadOnlyList<string> Candidates(string line)
    {
        IReadOnlyList<string> words;
        try { words = LineSplitter.Split(line); }
        catch (UsageException) { return []; } // inside an open quote: nothing to offer
        var current = line.Length == 0 || char.IsWhiteSpace(line[^1]) ? "" : words[^1];
        var done = current.Length == 0 ? words : words.Take(words.Count - 1).ToList();
        IEnumerable<string> options;
        if (done.Count == 0)
            options = catalog.Palettes.Select(p => p.Name).Concat(ShellWords);
        else if (done.Count == 1)
            options = done[0] == "help"
                ? catalog.Palettes.Select(p => p.Name)
                : catalog.Commands.Where(c => c.Palette == done[0]).Select(c => c.Name);
        else
        {
            var command = catalog.Commands.FirstOrDefault(c => c.Palette == done[0] && c.Name == done[1]);
            if (command is null) return [];
            var previous = done[^1];
            var pending = previous.StartsWith("--", StringComparison.Ordinal)
                ? command.Switches.FirstOrDefault(s => s.Name == previous[2..])
                : default;
            if (pending.Name is not null && pending.ValueName is not null)
                options = pending.Values ?? [];
            else
            {
                var used = done.Where(w => w.StartsWith("--", StringComparison.Ordinal)).Select(w => w[2..]).ToHashSet(StringComparer.Ordinal);
                options = command.Switches.Where(s => !used.Contains(s.Name)).Select(s => "--" + s.Name);
            }
        }
        return options.Where(o => o.StartsWith(current, StringComparison.Ordinal)).Distinct().Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// What TAB does to <paramref name="line"/>: the completed line (one candidate: the word plus a space; several: their
    /// longest common prefix) and the candidates to list when the line could not be extended.
    /// </summary>
    public (string Line, IReadOnlyList<string> Listed) Complete(string line)
    {
        var candidates = Candidates(line);
        if (candidates.Count == 0) return (line, []);
        var words = LineSplitter.Split(line); // cannot throw: Candidates found some
        var current = line.Length == 0 || char.IsWhiteSpace(line[^1]) ? "" : words[^1];
        var stem = line[..(line.Length - current.Length)];
        if (candidates.Count == 1) return (stem + candidates[0] + " ", []);
        var prefix = candidates.Aggregate((a, b) => a[..CommonLength(a, b)]);
        return prefix.Length > current.Length ? (stem + prefix, []) : (line, candidates);
    }

    private static int CommonLength(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        var i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }
}

/// <summary>Splits an interactive line into words; single or double quotes keep spaces inside a word.</summary>
public static class LineSplitter
{
    /// <summary>The words of <paramref name="line"/>; throws <see cref="UsageException"/> on an unclosed quote.</summary>
    public static IReadOnlyList<string> Split(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        var inWord = false;
        char? quote = null;
        foreach (var ch in line)
        {
            if (quote is not null)
            {
                if (ch == quote) quote = null;
                else word.Append(ch);
            }
            else if (ch is '"' or '\'') { quote = ch; inWord = true; }
            else if (char.IsWhiteSpace(ch))
            {
                if (inWord) { words.Add(word.ToString()); word.Clear(); inWord = false; }
            }
            else { word.Append(ch); inWord = true; }
        }
        if (quote is not null) throw new UsageException($"Unclosed {quote} quote in: {line}");
        if (inWord) words.Add(word.ToString());
        return words;
    }
}
