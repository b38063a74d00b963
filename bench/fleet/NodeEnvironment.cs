/// <summary>
/// NODE_ENV="A=1 B=2": environment variables for the node process alone (runtime knobs such as DOTNET_gcServer=1), so
/// the benchmark's clients keep their own. Shared by SteadyBench and ColdBench (linked into both).
/// </summary>
static class NodeEnvironment
{
    /// <summary>The pairs of NODE_ENV; a word without '=' is refused, naming it.</summary>
    public static IReadOnlyDictionary<string, string> FromNodeEnv()
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var word in (Environment.GetEnvironmentVariable("NODE_ENV") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = word.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"NODE_ENV word '{word}' is not NAME=VALUE; write NODE_ENV=\"A=1 B=2\".");
            pairs[word[..eq]] = word[(eq + 1)..];
        }
        return pairs;
    }
}
