using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch delta ...</c>: per-file zstd patch-from deltas between two published releases (docs/store-format.md).</summary>
public static class DeltaPalette
{
    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry)
    {
        registry.Palette("delta", "build per-file deltas between published releases")
            .Add(new CommandSpec("delta", "build",
                "Patch every changed file of --to against --from (zstd patch-from), store the encrypted patches as chunks and sign the delta manifest. Idempotent.",
                [
                    new SwitchSpec("store", "DIR", "content store folder", Required: true),
                    new SwitchSpec("keys", "DIR", "key folder from 'orch keys init' (content key and signing key)", Required: true),
                    new SwitchSpec("product", "NAME", "product name", Required: true),
                    new SwitchSpec("from", "VERSION", "source version (what devices run)", Required: true),
                    new SwitchSpec("to", "VERSION", "target version (newer)", Required: true),
                    new SwitchSpec("level", "N", $"zstd level 1..22 (default {PatchCodec.DefaultLevel})"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Build));
    }

    private static Task<int> Build(CommandInvocation call, CancellationToken cancellationToken)
    {
        var level = (int)(call.OptionalLong("level", 1, 22) ?? PatchCodec.DefaultLevel);
        var keysDir = call.Required("keys");
        var contentKey = KeyFiles.LoadContentKey(keysDir);
        using var signingKey = KeyFiles.LoadSigningKey(keysDir);
        var store = FileSystemStore.Open(call.Required("store"), create: false);
        var result = new DeltaBuilder(store, contentKey, signingKey) { Level = level }
            .Build(call.Required("product"), call.Required("from"), call.Required("to"), cancellationToken);
        if (call.Json)
            Render.Json(call.Console.Out, new DeltaBuildOutput(
                result.ManifestPath, StoreLayout.SignaturePathFor(result.ManifestPath), result.Delta.Product,
                result.Delta.From.Version, result.Delta.From.VersionId, result.Delta.To.Version, result.Delta.To.VersionId,
                result.AlreadyBuilt, result.FilesPatched, result.FilesChunks, result.PatchBytes, result.ChunkBytesReplaced,
                result.ObjectsWritten, result.Delta.Level, Math.Round(result.Elapsed.TotalSeconds, 3)));
        else
        {
            var o = call.Console.Out;
            o.WriteLine(result.AlreadyBuilt
                ? $"Delta {result.Delta.Product} {result.Delta.From.Version} -> {result.Delta.To.Version} already built; nothing written."
                : $"Built delta {result.Delta.Product} {result.Delta.From.Version} -> {result.Delta.To.Version}");
            o.WriteLine($"  patched    {result.FilesPatched} files, {Render.Bytes(result.PatchBytes)} of patches (zstd level {result.Delta.Level})");
            if (!result.AlreadyBuilt)
                o.WriteLine($"  replaces   {Render.Bytes(result.ChunkBytesReplaced)} of chunks those files would need");
            o.WriteLine($"  chunks     {result.FilesChunks} changed files stay on chunks (patch not smaller)");
            o.WriteLine($"  elapsed    {Render.Seconds(result.Elapsed)}");
            o.WriteLine($"  manifest   {result.ManifestPath}");
        }
        return Task.FromResult(ExitCodes.Success);
    }
}
