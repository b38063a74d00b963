using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Channels;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch channel ...</c>: release channels over <c>/admin/v1/channels</c>.</summary>
public static class ChannelPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Channel, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
            ["show"] = ShowAsync,
            ["set"] = SetAsync,
        });

    private static string Name(string what, string value) =>
        ChannelRules.Problem(what, value) is { } bad ? throw new UsageException(bad) : value;

    private static string Release(ChannelRelease? r) => r is null ? "-" : $"{r.Version} (id {r.VersionId})";

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var product = call.Optional("product") is { } p ? Name("--product", p) : null;
        var view = await client.GetAsync<ChannelDirectoryView>("/admin/v1/channels" + (product is null ? "" : "?product=" + product), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            Render.Table(call.Console, ["product", "channel", "current release", "rollouts", "updated"],
                view.Channels.Select(c => (IReadOnlyList<string?>)[c.Product, c.Channel, Release(c.Current),
                    c.Rollouts.Count == 0 ? "-" : string.Join(",", c.Rollouts.Select(h => $"{h.RolloutId} -> {h.Target.Version}")), Render.Time(c.UpdatedAt)]));
            call.Console.Out.WriteLine($"{view.Channels.Count} channel(s).");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var product = Name("PRODUCT", call.Positionals[0]);
        var channel = Name("CHANNEL", call.Positionals[1]);
        var d = await client.GetAsync<ChannelDetailView>($"/admin/v1/channels/{product}/{channel}", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, d);
        else
        {
            var c = d.Channel;
            var o = call.Console.Out;
            o.WriteLine($"Channel {c.Product}/{c.Channel}: {Release(c.Current)}");
            Render.Fields(o,
            [
                ("manifest", c.Current?.ManifestPath),
                ("rollouts", c.Rollouts.Count == 0 ? null : string.Join(", ", c.Rollouts.Select(h => $"{h.RolloutId} -> {h.Target.Version}"))),
                ("devices", $"{d.Devices} ({d.OnCurrent} on the current release)"),
                ("installed", d.Versions.Count == 0 ? null : string.Join(", ", d.Versions.Select(v => $"id {v.VersionId}: {v.Devices}"))),
                ("updated", Render.Time(c.UpdatedAt)),
            ]);
            if (c.History.Count > 0)
                Render.Table(call.Console, ["at", "release", "cause"],
                    c.History.Select(h => (IReadOnlyList<string?>)[Render.Time(h.At), Release(h.Release), h.Cause]), "history");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> SetAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var product = Name("PRODUCT", call.Positionals[0]);
        var channel = Name("CHANNEL", call.Positionals[1]);
        var version = call.Positionals[2];
        var view = await client.PostAsync<ChannelView>($"/admin/v1/channels/{product}/{channel}",
            new ChannelSetRequest(version, call.Optional("operator"), call.Optional("reason")), ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else call.Console.Out.WriteLine($"Channel {view.Product}/{view.Channel} now points at {Release(view.Current)}; its devices converge on their next check-in.");
        return ExitCodes.Success;
    }
}
