/// <summary>
/// NODE_ENV="A=1 B=2": environment variables for the node process alone (runtime knobs such as DOTNET_gcServer=1), so
/// the benchmark's clients keep their own. Shared by SteadyBench and ColdBench (linked into both).
/// </summary>
static class NodeEnvironment
{
    private const string BusyRule = "ORCH_Admission__BusyQueueWaitMilliseconds";

    /// <summary>
    /// The runtime environment the node ships with (deploy/k8s/statefulset.yaml and src/Orchestrator/Properties/launchSettings.json
    /// set it; docs/configuration.md, "Runtime settings"): the node gets it unless NODE_ENV names the same variable.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> Shipped = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["DOTNET_GCgen0size"] = "0x4000000",
    };

    /// <summary>
    /// The pairs of NODE_ENV over <see cref="Shipped"/>, the node's busy rule off unless set; a word without '=' is
    /// refused, naming it.
    /// </summary>
    public static IReadOnlyDictionary<string, string> FromNodeEnv()
    {
        var pairs = new Dictionary<string, string>(Shipped, StringComparer.Ordinal);
        foreach (var word in (Environment.GetEnvironmentVariable("NODE_ENV") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = word.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"NODE_ENV word '{word}' is not NAME=VALUE; write NODE_ENV=\"A=1 B=2\".");
            pairs[word[..eq]] = word[(eq + 1)..];
        }
        // The closed-loop phases check every device in again within seconds: early devices by construction, which the
        // node's busy rule (on by default) refuses while it is saturated, as it should a storm's. A run without a storm
        // measures how fast the node answers, so there the rule is off unless the run sets it; a storm run (STORM_SECONDS
        // above 0) keeps the node's default.
        var storm = int.TryParse(Environment.GetEnvironmentVariable("STORM_SECONDS"), out var seconds) && seconds > 0;
        if (!storm && !pairs.ContainsKey(BusyRule) && Environment.GetEnvironmentVariable(BusyRule) is null) pairs[BusyRule] = "0";
        return pairs;
    }

    /// <summary>
    /// The runtime settings of <see cref="Shipped"/> as the node gets them, for the bare endpoint: both sides run with the
    /// same GC settings, so the ratio compares their work, not their configuration.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ForBaseline()
    {
        var node = FromNodeEnv();
        return Shipped.Keys.Where(node.ContainsKey).ToDictionary(k => k, k => node[k], StringComparer.Ordinal);
    }
}
