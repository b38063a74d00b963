using Orchestrator.Cli.CommandLine;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Server;

/// <summary>Runs one server-backed command with a ready <see cref="AdminClient"/>.</summary>
public delegate Task<int> ServerHandler(CommandInvocation call, AdminClient client, CancellationToken cancellationToken);

/// <summary>
/// Turns the shared <see cref="PaletteCatalog"/> descriptions into commands: every server-backed command gets the
/// common switches <c>--server</c>, <c>--token</c> and <c>--json</c>, and a handler from its palette class.
/// </summary>
public static class ServerCommands
{
    /// <summary><c>--server URL</c>.</summary>
    public static readonly SwitchSpec Server = new("server", "URL", $"node address (default: ORCH_SERVER, else {AdminClient.DefaultServer})");

    /// <summary><c>--token TOKEN</c>.</summary>
    public static readonly SwitchSpec Token = new("token", "TOKEN", "admin bearer token (default: ORCH_TOKEN)");

    /// <summary><c>--json</c>.</summary>
    public static readonly SwitchSpec Json = new("json", null, "machine-readable output");

    /// <summary>The switches every server-backed command accepts.</summary>
    public static IReadOnlyList<SwitchSpec> Common { get; } = [Server, Token, Json];

    /// <summary>A DEVICE argument, checked before anything is sent (usage error naming the rule).</summary>
    public static string DeviceId(string id) => Orchestrator.Messages.Devices.DeviceIdRules.IsValid(id)
        ? id
        : throw new UsageException($"DEVICE '{id}' is not a device id: it must match {Orchestrator.Messages.Devices.DeviceIdRules.Pattern}.");

    /// <summary>A <c>--NAME a,b</c> switch as its comma-separated items (blanks dropped), or null when absent.</summary>
    public static string[]? List(CommandInvocation call, string name) =>
        call.Optional(name)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// A <c>--NAME k=v,k2=v2</c> switch as an attribute map (null when absent), checked before anything is sent (usage
    /// error naming the pair and the rule).
    /// </summary>
    public static Dictionary<string, string>? Attributes(CommandInvocation call, string name)
    {
        if (List(call, name) is not { } parts) return null;
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            if (Orchestrator.Messages.Protocol.DeviceAttributeRules.ParsePair(part) is not { } kv)
                throw new UsageException($"--{name} '{part}' is not key=value (e.g. --{name} site=berlin,hw=rev2).");
            if (Orchestrator.Messages.Protocol.DeviceAttributeRules.Problem($"--{name}", kv.Key, kv.Value) is { } bad) throw new UsageException(bad);
            if (!map.TryAdd(kv.Key, kv.Value)) throw new UsageException($"--{name} names '{kv.Key}' twice; give each key once.");
        }
        return map.Count == 0 ? throw new UsageException($"--{name} is empty; give key=value pairs, e.g. --{name} site=berlin.") : map;
    }

    /// <summary>Registers <paramref name="palette"/>'s commands; every command must have a handler (and vice versa).</summary>
    public static void Register(CommandRegistry registry, PaletteDescription palette, IReadOnlyDictionary<string, ServerHandler> handlers)
    {
        registry.DeclarePaletteIfAbsent(palette.Name, palette.Summary);
        var missing = palette.Commands.Select(c => c.Name).Except(handlers.Keys).Concat(handlers.Keys.Except(palette.Commands.Select(c => c.Name))).ToList();
        if (missing.Count > 0) throw new InvalidOperationException($"Palette '{palette.Name}': commands and handlers differ: {string.Join(", ", missing)}.");
        foreach (var command in palette.Commands)
        {
            var handler = handlers[command.Name];
            registry.Add(new CommandSpec(palette.Name, command.Name, command.Summary,
                [.. command.Switches.Select(s => new SwitchSpec(s.Name, s.ValueName, s.Description, s.Required)), .. Common],
                command.Positionals,
                async (call, ct) =>
                {
                    using var client = AdminClient.FromInvocation(call);
                    return await handler(call, client, ct).ConfigureAwait(false);
                }));
        }
    }
}
