using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch group ...</c>: saved device groups that rollout selectors name.</summary>
public static class GroupPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Group, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
            ["show"] = ShowAsync,
            ["save"] = SaveAsync,
            ["delete"] = DeleteAsync,
        });

    private static string Name(CommandInvocation call) => Uri.EscapeDataString(call.Positionals[0]);


    private static string Conditions(DeviceGroupView g) => string.Join("; ", new[]
    {
        g.Tags.Count > 0 ? "tags " + string.Join(",", g.Tags) : null,
        g.Attributes is { Count: > 0 } a ? "attributes " + string.Join(",", a.Select(kv => $"{kv.Key}={kv.Value}")) : null,
        g.DeviceIds.Count > 0 ? $"{g.DeviceIds.Count} listed device(s)" : null,
    }.OfType<string>());

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var list = await client.GetAsync<DeviceGroupList>("/admin/v1/groups", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, list);
        else Render.Table(call.Console, ["group", "source", "matches", "devices", "saved by"],
            list.Groups.Select(g => (IReadOnlyList<string?>)[g.Name, g.Source, Conditions(g), g.Devices.ToString(), g.SavedBy]));
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        Write(call, await client.GetAsync<DeviceGroupView>($"/admin/v1/groups/{Name(call)}", ct).ConfigureAwait(false), null);
        return ExitCodes.Success;
    }

    private static async Task<int> SaveAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var body = new DeviceGroupRequest(ServerCommands.List(call, "tags"), ServerCommands.List(call, "devices"), ServerCommands.Attributes(call, "attributes"));
        if (body.Tags is null && body.DeviceIds is null && body.Attributes is null)
            throw new UsageException("A group needs members: give --tags, --attributes or --devices.");
        Write(call, await client.SendAsync<DeviceGroupView>(HttpMethod.Put, $"/admin/v1/groups/{Name(call)}", body, ct).ConfigureAwait(false), "Saved");
        return ExitCodes.Success;
    }

    private static async Task<int> DeleteAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        await client.SendAsync<System.Text.Json.JsonElement>(HttpMethod.Delete, $"/admin/v1/groups/{Name(call)}", null, ct).ConfigureAwait(false);
        if (!call.Json) call.Console.Out.WriteLine($"Deleted group {call.Positionals[0]}; rollouts created with it keep their copy.");
        return ExitCodes.Success;
    }

    private static void Write(CommandInvocation call, DeviceGroupView g, string? verb)
    {
        if (call.Json)
        {
            Render.Json(call.Console.Out, g);
            return;
        }
        var o = call.Console.Out;
        o.WriteLine($"{(verb is null ? "Group" : verb + " group")} {g.Name} ({g.Source}): {g.Devices} device(s) match now");
        Render.Fields(o,
        [
            ("matches", Conditions(g)),
            ("listed", g.DeviceIds.Count == 0 ? null : string.Join(",", g.DeviceIds.Take(20)) + (g.DeviceIds.Count > 20 ? ", ..." : "")),
            ("devices", g.Sample.Count == 0 ? null : string.Join(",", g.Sample) + (g.Devices > g.Sample.Count ? ", ..." : "")),
            ("saved", g.SavedAt is { } at ? $"{Render.Time(at)} by {g.SavedBy}" : null),
        ]);
    }
}
