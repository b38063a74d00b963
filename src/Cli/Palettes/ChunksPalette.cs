using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Spectre.Console;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch chunks ...</c>: the node's chunk store (stats, verify, gc).</summary>
public static class ChunksPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry) =>
        ServerCommands.Register(registry, PaletteCatalog.Chunks, new Dictionary<string, ServerHandler>
        {
            ["stats"] = StatsAsync,
            ["verify"] = VerifyAsync,
            ["gc"] = GcAsync,
        });

    private static async Task<int> StatsAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var s = await client.GetAsync<ChunkStatsView>("/admin/v1/chunks/stats", ct).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, s);
        else
        {
            call.Console.Out.WriteLine($"Chunk store of {client.Server} ({s.Backend})");
            Render.Fields(call.Console.Out,
            [
                ("chunks", $"{s.Chunks} ({Render.Bytes(s.ChunkBytes)})"),
                ("referenced", s.ReferencedChunks.ToString()),
                ("unreferenced", $"{s.UnreferencedChunks} ({Render.Bytes(s.UnreferencedBytes)}, freed by 'orch chunks gc --apply')"),
                ("products", s.Products.ToString()),
                ("versions", s.Versions.ToString()),
            ]);
        }
        return ExitCodes.Success;
    }

    /// <summary>Runs <paramref name="work"/> under a spinner on a terminal (the server does the long part).</summary>
    private static async Task<T> WithSpinnerAsync<T>(CommandInvocation call, string what, Func<Task<T>> work)
    {
        if (!call.Console.IsTerminal || call.Json) return await work().ConfigureAwait(false);
        return await Render.Ansi(call.Console).Status().StartAsync(what, _ => work()).ConfigureAwait(false);
    }

    private static async Task<int> VerifyAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var r = await WithSpinnerAsync(call, "verifying chunks and manifests on the node...",
            () => client.PostAsync<ChunkVerifyView>("/admin/v1/chunks/verify", null, ct)).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, r);
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Checked {r.ChunksChecked} chunks and {r.ManifestsChecked} manifests.");
            if (r.Ok) o.WriteLine("OK: no problems found.");
            else
            {
                o.WriteLine($"{r.Problems.Count} problem(s):");
                foreach (var p in r.Problems) o.WriteLine($"  {p}");
            }
        }
        return r.Ok ? ExitCodes.Success : ExitCodes.IntegrityProblem;
    }

    private static async Task<int> GcAsync(CommandInvocation call, AdminClient client, CancellationToken ct)
    {
        var grace = call.OptionalLong("grace-minutes", 1, 525_600) ?? 60;
        var apply = call.Has("apply");
        var r = await WithSpinnerAsync(call, "collecting garbage on the node...",
            () => client.PostAsync<System.Text.Json.JsonElement>("/admin/v1/chunks/gc", new ChunkGcRequest(!apply, grace), ct)).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, r);
        else
        {
            var verb = apply ? "Deleted" : "Would delete (dry run; add --apply)";
            call.Console.Out.WriteLine($"{verb} {r.GetProperty("deleted").GetInt64()} chunks; kept {r.GetProperty("kept").GetInt64()} referenced of " +
                $"{r.GetProperty("examined").GetInt64()} older than {grace} min; {r.GetProperty("manifests").GetInt32()} manifests counted ({r.GetProperty("backend").GetString()}).");
        }
        return ExitCodes.Success;
    }
}
