using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch cluster ...</c>: membership (show, leave, down).</summary>
public static class ClusterPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Cluster, new Dictionary<string, ServerHandler>
        {
            ["show"] = ShowAsync,
            ["leave"] = (call, client, ct) => MemberActionAsync(call, client, "leave", ct),
            ["down"] = (call, client, ct) => MemberActionAsync(call, client, "down", ct),
        });

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var view = await client.GetAsync<ClusterView>("/admin/v1/cluster", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            Render.Table(call.Console, ["address", "status", "roles", "reachable", "leader", "self"],
                view.Members.Select(m => (IReadOnlyList<string?>)[m.Address, m.Status, string.Join(",", m.Roles), m.Reachable ? "yes" : "NO",
                    m.IsLeader ? "leader" : "", m.IsSelf ? "*" : ""]),
                $"cluster seen from {view.SelfAddress}");
            call.Console.Out.WriteLine($"{view.Members.Count} member(s), {view.UnreachableCount} unreachable, leader {view.Leader ?? "none"}");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> MemberActionAsync(CommandInvocation call, AdminClient client, string action, CancellationToken ct)
    {
        var result = await client.PostAsync<ClusterMemberActionView>($"/admin/v1/cluster/{action}", new ClusterMemberRequest(call.Positionals[0]), ct)
            .ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, result);
        else call.Console.Out.WriteLine(action == "leave"
            ? $"Asked {result.Address} (was {result.PreviousStatus}) to leave; its shards move to the remaining nodes. Follow with 'orch cluster show'."
            : $"Marked {result.Address} (was {result.PreviousStatus}) down; it is removed from the cluster and must be restarted to rejoin.");
        return ExitCodes.Success;
    }
}
