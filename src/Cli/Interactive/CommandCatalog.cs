using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Interactive;

/// <summary>
/// What the interactive mode offers for help and tab completion: the palettes the server describes
/// (<c>GET /admin/v1/palettes</c>) merged with this orch's local palettes (keys, store, release publish). A server
/// command this orch has no handler for is listed as such (the node is newer than the CLI).
/// </summary>
public sealed class CommandCatalog
{
    /// <summary>A command as offered.</summary>
    /// <param name="Palette">Palette name.</param>
    /// <param name="Name">Command name.</param>
    /// <param name="Summary">Help line.</param>
    /// <param name="Switches">Switches (name, value placeholder or null, allowed values or null).</param>
    /// <param name="Positionals">Positional names.</param>
    /// <param name="FromServer">Described by the server.</param>
    /// <param name="Runnable">This orch has a handler for it.</param>
    public sealed record Entry(string Palette, string Name, string Summary, IReadOnlyList<(string Name, string? ValueName, IReadOnlyList<string>? Values)> Switches,
        IReadOnlyList<string> Positionals, bool FromServer, bool Runnable);

    /// <summary>Palette name to summary, in display order.</summary>
    public IReadOnlyList<(string Name, string Summary)> Palettes { get; }

    /// <summary>Every command.</summary>
    public IReadOnlyList<Entry> Commands { get; }

    /// <summary>Address of the node that described itself, or null when it could not be asked.</summary>
    public string? ServerNode { get; }

    private CommandCatalog(IReadOnlyList<(string, string)> palettes, IReadOnlyList<Entry> commands, string? serverNode)
    {
        Palettes = palettes;
        Commands = commands;
        ServerNode = serverNode;
    }

    /// <summary>Merges <paramref name="server"/> (may be null: local commands only) with <paramref name="local"/>.</summary>
    public static CommandCatalog Build(CommandRegistry local, PaletteCatalogView? server)
    {
        var palettes = new List<(string, string)>();
        var commands = new List<Entry>();
        var serverNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in server?.Palettes ?? [])
        {
            palettes.Add((p.Name, p.Summary));
            foreach (var c in p.Commands)
            {
                serverNames.Add($"{p.Name} {c.Name}");
                var runnable = local.Commands.Any(l => l.Palette == p.Name && l.Name == c.Name);
                commands.Add(new Entry(p.Name, c.Name, c.Summary,
                    [.. c.Switches.Select(s => (s.Name, s.ValueName, s.Values)), .. ServerCommands.Common.Select(s => (s.Name, s.ValueName, (IReadOnlyList<string>?)null))],
                    c.Positionals, true, runnable));
            }
        }
        foreach (var (name, summary) in local.Palettes)
        {
            if (!palettes.Any(p => p.Item1 == name)) palettes.Add((name, summary));
            // Without a server description, the local registry's server-backed commands are still offered.
            foreach (var c in local.Commands.Where(c => c.Palette == name && !serverNames.Contains($"{c.Palette} {c.Name}")))
                commands.Add(new Entry(c.Palette, c.Name, c.Summary, [.. c.Switches.Select(s => (s.Name, s.ValueName, (IReadOnlyList<string>?)null))],
                    c.Positionals, false, true));
        }
        // A local palette whose commands all come from the server keeps its place; drop palettes with no command.
        palettes.RemoveAll(p => !commands.Any(c => c.Palette == p.Item1));
        return new CommandCatalog(palettes, commands, server?.Node);
    }

    /// <summary>Help text: every palette with its commands, or one palette's commands with usage.</summary>
    public string Help(string? palette = null)
    {
        var lines = new List<string>();
        if (palette is null)
        {
            lines.Add(ServerNode is null ? "Commands (local description; the server could not be asked):" : $"Commands served by {ServerNode} and local ones:");
            foreach (var (name, summary) in Palettes)
            {
                lines.Add($"  {name,-10} {summary}");
                foreach (var c in Commands.Where(c => c.Palette == name))
                    lines.Add($"    {c.Name,-10} {c.Summary}{(c.Runnable ? "" : "  [server only: this orch is older than the node]")}");
            }
            lines.Add("Type 'help PALETTE' for usage, TAB to complete, 'exit' to leave.");
        }
        else
        {
            var p = Palettes.FirstOrDefault(x => x.Name == palette);
            if (p.Name is null) return $"Unknown palette '{palette}'. Palettes: {string.Join(", ", Palettes.Select(x => x.Name))}.";
            lines.Add($"{p.Name} - {p.Summary}");
            foreach (var c in Commands.Where(c => c.Palette == palette))
            {
                var usage = $"{c.Palette} {c.Name}" + string.Concat(c.Switches.Select(s => s.ValueName is null ? $" [--{s.Name}]" : $" [--{s.Name} {s.ValueName}]"))
                    + string.Concat(c.Positionals.Select(x => $" {x}"));
                lines.Add($"  {usage}");
                lines.Add($"      {c.Summary}");
            }
        }
        return string.Join(Environment.NewLine, lines);
    }
}
