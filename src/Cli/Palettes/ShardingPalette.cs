using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch sharding ...</c>: regions, cluster-wide stats, where a device's actor lives.</summary>
public static class ShardingPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Sharding, new Dictionary<string, ServerHandler>
        {
            ["regions"] = RegionsAsync,
            ["stats"] = StatsAsync,
            ["locate"] = LocateAsync,
        });

    private static async Task<int> RegionsAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var view = await client.GetAsync<ShardRegionsView>("/admin/v1/sharding/regions", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            Render.Table(call.Console, ["type", "hosted here", "shards", "entities", "busiest shards"],
                view.Regions.Select(r => (IReadOnlyList<string?>)[r.TypeName, r.HostedHere ? "yes" : "proxy only", r.Shards.Count.ToString(),
                    r.Shards.Sum(s => s.EntityCount).ToString(),
                    string.Join(" ", r.Shards.OrderByDescending(s => s.EntityCount).Take(5).Select(s => $"{s.ShardId}:{s.EntityCount}"))]),
                $"shard regions on {view.Node}");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> StatsAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var view = await client.GetAsync<ShardingStatsView>("/admin/v1/sharding/stats", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            Render.Table(call.Console, ["type", "node", "shards", "entities", "failed shards"],
                view.Types.SelectMany(t => t.Regions.Count == 0
                    ? [(IReadOnlyList<string?>)[t.TypeName, "(no region)", "0", "0", ""]]
                    : t.Regions.Select(r => (IReadOnlyList<string?>)[t.TypeName, r.Address, r.Shards.ToString(), r.Entities.ToString(),
                        string.Join(",", r.FailedShards)])),
                "cluster sharding statistics");
        }
        return view.Types.Any(t => t.Regions.Any(r => r.FailedShards.Count > 0)) ? ExitCodes.Unavailable : ExitCodes.Success;
    }

    private static async Task<int> LocateAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var view = await client.GetAsync<ShardLocationView>($"/admin/v1/sharding/locate/{ServerCommands.DeviceId(call.Positionals[0])}", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            call.Console.Out.WriteLine($"Device {view.DeviceId}");
            Render.Fields(call.Console.Out,
            [
                ("shard", view.ShardId),
                ("node", view.Address ?? "not allocated (no device of this shard is running)"),
                ("actor", view.EntityAlive ? "running" : "not running (starts on the next message)"),
            ]);
        }
        return ExitCodes.Success;
    }
}
