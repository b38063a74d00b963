using System.Reflection;

namespace Orchestrator.Node.Hosting;

/// <summary>What the node's command line asks for.</summary>
public enum NodeCommand
{
    /// <summary>Run a node (configuration switches only).</summary>
    Run,
    /// <summary>Print usage and exit 0.</summary>
    Help,
    /// <summary>Print the version and exit 0.</summary>
    Version,
    /// <summary>Run the newcomer's demo (its own switches follow).</summary>
    Demo,
}

/// <summary>
/// The node's command line: <c>orchestrator [--Section:Key=value ...]</c>, <c>orchestrator demo ...</c>,
/// <c>--help</c>, <c>--version</c>. Anything else is refused before a node starts, because a typo that started a real
/// node (<c>orchestrator dmeo</c>) would open the data folder and bind the ports.
/// </summary>
public static class NodeCommandLine
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage: orchestrator [--Section:Key=value ...]      run a node (settings: docs/configuration.md)
               orchestrator demo [--help] [options]        start a node with a simulated fleet (see `orchestrator demo --help`)
               orchestrator --help | --version

        Settings come from appsettings.json, then ORCH_-prefixed environment variables with '__' between sections
        (ORCH_Node__Port=4054, ORCH_Urls=http://0.0.0.0:5080), then command-line switches (--Node:Port=4054 or
        --Node:Port 4054). Unknown keys under the node's sections are refused with the nearest valid key.
        """;

    /// <summary>The node's version (informational version of the executable).</summary>
    public static string Version { get; } =
        typeof(NodeCommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>Parsed command line.</summary>
    /// <param name="Command">What to do.</param>
    /// <param name="Rest">For <see cref="NodeCommand.Demo"/> the demo's own arguments; for <see cref="NodeCommand.Run"/> the configuration switches.</param>
    /// <param name="SwitchKeys">Configuration keys set by switches (checked against the known sections).</param>
    public sealed record Parsed(NodeCommand Command, string[] Rest, IReadOnlyList<string> SwitchKeys);

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> naming the bad argument.</summary>
    public static Parsed Parse(string[] args)
    {
        if (args.Length > 0 && args[0] == "demo") return new Parsed(NodeCommand.Demo, args[1..], []);
        if (args.Any(a => a is "--help" or "-h" or "-?" or "help")) return new Parsed(NodeCommand.Help, [], []);
        if (args.Any(a => a is "--version" or "version")) return new Parsed(NodeCommand.Version, [], []);
        var keys = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
            {
                var hint = ConfigurationSchema.EditDistance(a.TrimStart('-').ToLowerInvariant(), "demo") <= 2 ? " (did you mean `orchestrator demo`?)" : "";
                throw new ArgumentException($"unknown argument '{a}'{hint}; settings are given as --Section:Key=value, see --help.");
            }
            var body = a[2..];
            var eq = body.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                keys.Add(body[..eq]);
                continue;
            }
            if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"switch '{a}' has no value; write {a}=VALUE or {a} VALUE.");
            keys.Add(body);
            i++;
        }
        return new Parsed(NodeCommand.Run, args, keys);
    }
}
