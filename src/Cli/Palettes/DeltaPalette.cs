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
                "Code the changed files of --to against --from (zstd patch-from: one whole-release stream over all source files, or one patch per file; auto keeps whichever a device fetches fewer bytes for), store the encrypted objects as chunks and sign the delta manifest. Idempotent.",
                [
                    new SwitchSpec("store", "DIR", "content store folder", Required: true),
                    new SwitchSpec("keys", "DIR", "key folder from 'orch keys init' (content key and signing key)", Required: true),
                    new SwitchSpec("product", "NAME", "product name", Required: true),
                    new SwitchSpec("from", "VERSION", "source version (what devices run)", Required: true),
                    new SwitchSpec("to", "VERSION", "target version (newer)", Required: true),
                    new SwitchSpec("level", "N", "zstd level 1..22 (default: the highest level whose build fits --memory-budget; refused when a given level does not fit)"),
                    new SwitchSpec("memory-budget", "BYTES", $"memory the build may hold: source + changed files plus a zstd context per frame in flight (~0.1 GiB at level 19, ~0.65 GiB at 22; default {DeltaMemory.DefaultBudget})"),
                    new SwitchSpec("method", "auto|release|files", "whole-release stream, per-file patches, or the smaller of the two (default auto)"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Build));
    }

    private static Task<int> Build(CommandInvocation call, CancellationToken cancellationToken)
    {
        var level = (int?)call.OptionalLong("level", 1, PatchCodec.MaxLevel);
        var budget = call.OptionalLong("memory-budget", 1) ?? DeltaMemory.DefaultBudget;
        var keysDir = call.Required("keys");
        var contentKey = KeyFiles.LoadContentKey(keysDir);
        using var signingKey = KeyFiles.LoadSigningKey(keysDir);
        var store = FileSystemStore.Open(call.Required("store"), create: false);
        var method = ParseMethod(call.Optional("method"));
        var result = new DeltaBuilder(store, contentKey, signingKey) { Level = level, MemoryBudget = budget, Method = method }
            .Build(call.Required("product"), call.Required("from"), call.Required("to"), cancellationToken);
        if (call.Json)
            Render.Json(call.Console.Out, new DeltaBuildOutput(
                result.ManifestPath, StoreLayout.SignaturePathFor(result.ManifestPath), result.Delta.Product,
                result.Delta.From.Version, result.Delta.From.VersionId, result.Delta.To.Version, result.Delta.To.VersionId,
                result.AlreadyBuilt, result.FilesPatched, result.FilesChunks, result.PatchBytes, result.ChunkBytesReplaced,
                result.ObjectsWritten, result.Delta.Level, Math.Round(result.Elapsed.TotalSeconds, 3), result.Delta.Release is null ? "files" : "release",
                result.Memory?.Parallelism ?? 0, result.Memory?.Bytes ?? 0,
                result.Auto is { } a ? new DeltaAutoOutput(a.ReleaseBytes, a.ProbeLevel, a.ProbeBytes, a.FilesBytes,
                    Math.Round(a.ProbeElapsed.TotalSeconds, 3), Math.Round(a.ReleaseElapsed.TotalSeconds, 3), Math.Round(a.FilesElapsed.TotalSeconds, 3)) : null));
        else
        {
            var o = call.Console.Out;
            o.WriteLine(result.AlreadyBuilt
                ? $"Delta {result.Delta.Product} {result.Delta.From.Version} -> {result.Delta.To.Version} already built; nothing coded again (the target manifest's patch against the source's is added if missing)."
                : $"Built delta {result.Delta.Product} {result.Delta.From.Version} -> {result.Delta.To.Version}");
            o.WriteLine($"  method     {(result.Delta.Release is null ? "per-file patches" : result.Delta.Release.OneFrame
                ? $"whole-release stream, one frame in {result.Delta.Release.Frames.Count} object(s)"
                : $"whole-release stream, {result.Delta.Release.Frames.Count} frame(s)")}");
            if (result.Auto is { } auto)
                o.WriteLine(auto.FilesBytes is { } filesBytes
                    ? $"  compared   whole-release {Render.Bytes(auto.ReleaseBytes)} vs per-file {Render.Bytes(filesBytes)} fetched by a device"
                    : $"  compared   whole-release {Render.Bytes(auto.ReleaseBytes)} vs per-file {Render.Bytes(auto.ProbeBytes ?? 0)} at probe level {auto.ProbeLevel} fetched by a device (per-file not coded at level {result.Delta.Level}: it cannot win)");
            o.WriteLine($"  patched    {result.FilesPatched} files, {Render.Bytes(result.PatchBytes)} of patches (zstd level {result.Delta.Level})");
            if (!result.AlreadyBuilt)
                o.WriteLine($"  replaces   {Render.Bytes(result.ChunkBytesReplaced)} of chunks those files would need");
            o.WriteLine($"  chunks     {result.FilesChunks} changed files stay on chunks (patch not smaller)");
            if (result.Memory is { } memory)
                o.WriteLine($"  memory     {Render.Bytes(memory.Bytes)} planned ({memory.Parallelism} in flight at level {memory.Level})");
            o.WriteLine($"  elapsed    {Render.Seconds(result.Elapsed)}");
            o.WriteLine($"  manifest   {result.ManifestPath}");
        }
        return Task.FromResult(ExitCodes.Success);
    }

    /// <summary>Parses <c>--method</c> of <c>orch delta build</c>.</summary>
    internal static DeltaBuildMethod ParseMethod(string? text) => text switch
    {
        null or "auto" => DeltaBuildMethod.Auto,
        "release" => DeltaBuildMethod.Release,
        "files" => DeltaBuildMethod.Files,
        _ => throw new UsageException($"--method '{text}' is not auto, release or files."),
    };
}
