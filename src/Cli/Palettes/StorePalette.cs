using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch store ...</c>: figures, integrity check and garbage collection of a content store.</summary>
public static class StorePalette
{
    private static readonly SwitchSpec StoreSwitch = new("store", "DIR", "content store folder", Required: true);
    private static readonly SwitchSpec JsonSwitch = new("json", null, "machine-readable output");

    /// <summary>Registers the palette.</summary>
    public static void Register(CommandRegistry registry)
    {
        registry.Palette("store", "content store maintenance")
            .Add(new CommandSpec("store", "stats", "Count chunks, bytes, versions and channels; show what gc could free.",
                [StoreSwitch, JsonSwitch], [], Stats))
            .Add(new CommandSpec("store", "verify",
                "Hash every chunk against its id, check every listed manifest, its signature (with --keys) and the chunks it needs; " +
                "with --decrypt, decrypt every file as an agent would and check it against its manifest.",
                [
                    StoreSwitch,
                    new SwitchSpec("keys", "DIR", "key folder whose release-signing.pub verifies signatures (and content.key decrypts, with --decrypt)"),
                    new SwitchSpec("decrypt", null, "also decrypt every listed file with DIR/content.key: chunk tags, sizes and SHA-256 end to end"),
                    JsonSwitch,
                ], [], Verify))
            .Add(new CommandSpec("store", "gc",
                "Mark and sweep: delete chunks no retained manifest references (and, with --keep-last, old versions).",
                [
                    StoreSwitch,
                    new SwitchSpec("keep-last", "N", "keep the newest N versions per product plus channel targets (default: keep all)"),
                    new SwitchSpec("dry-run", null, "report what would be deleted, delete nothing"),
                    JsonSwitch,
                ], [], Gc));
    }

    private static FileSystemStore OpenStore(CommandInvocation call) => FileSystemStore.Open(call.Required("store"), create: false);

    private static Task<int> Stats(CommandInvocation call, CancellationToken cancellationToken)
    {
        var stats = new StoreMaintenance(OpenStore(call)).Stats();
        if (call.Json) Render.Json(call.Console.Out, stats);
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Store {stats.Root}");
            o.WriteLine($"  chunks        {stats.Chunks} ({Render.Bytes(stats.ChunkBytes)})");
            o.WriteLine($"  packs         {stats.Packs} ({Render.Bytes(stats.PackBytes)})");
            o.WriteLine($"  referenced    {stats.ReferencedChunks}");
            o.WriteLine($"  unreferenced  {stats.UnreferencedChunks} ({Render.Bytes(stats.UnreferencedBytes)}, freed by 'orch store gc')");
            if (stats.TempFiles > 0) o.WriteLine($"  temp files    {stats.TempFiles} (left by interrupted writes; gc removes them)");
            foreach (var p in stats.Products)
            {
                var channels = p.Channels.Count == 0 ? "none" : string.Join(", ", p.Channels.Select(c => $"{c.Key}={c.Value}"));
                o.WriteLine($"  product {p.Product}: {p.Versions} versions, latest {p.LatestVersion ?? "-"} (id {p.LatestVersionId}), channels {channels}");
                o.WriteLine($"    {p.DistinctChunks} distinct chunks; {Render.Bytes(p.LogicalBytes)} of files over all versions");
            }
        }
        return Task.FromResult(ExitCodes.Success);
    }

    private static Task<int> Verify(CommandInvocation call, CancellationToken cancellationToken)
    {
        var keysDir = call.Optional("keys");
        if (call.Has("decrypt") && keysDir is null)
            throw new UsageException("--decrypt needs --keys DIR: the folder from 'orch keys init' whose content.key encrypted the store.");
        var publicKey = keysDir is null ? null : KeyFiles.LoadPublicKey(keysDir);
        var contentKey = call.Has("decrypt") ? KeyFiles.LoadContentKey(keysDir!) : null;
        var report = new StoreMaintenance(OpenStore(call)).Verify(publicKey, contentKey: contentKey);
        if (call.Json) Render.Json(call.Console.Out, StoreVerifyOutput.Of(report));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Checked {report.ChunksChecked} chunks and {report.ManifestsChecked} manifests ({(report.SignaturesVerified ? "signatures verified" : "signatures not checked: pass --keys DIR")}; " +
                        $"{(contentKey is null ? "content not decrypted: pass --decrypt" : $"{report.FilesDecrypted} files decrypted and checked, {report.ChunkPatchesRebuilt} chunk patches applied and checked")}).");
            if (report.Ok) o.WriteLine("OK: no problems found.");
            else
            {
                o.WriteLine($"{report.Problems.Count} problem(s):");
                foreach (var p in report.Problems) o.WriteLine($"  {p}");
            }
        }
        return Task.FromResult(report.Ok ? ExitCodes.Success : ExitCodes.IntegrityProblem);
    }

    private static Task<int> Gc(CommandInvocation call, CancellationToken cancellationToken)
    {
        var keepLast = call.OptionalLong("keep-last", 1, int.MaxValue);
        var report = new StoreMaintenance(OpenStore(call)).CollectGarbage(new GcPolicy((int?)keepLast, call.Has("dry-run")));
        if (call.Json) Render.Json(call.Console.Out, report);
        else
        {
            var o = call.Console.Out;
            var verb = report.DryRun ? "Would delete" : "Deleted";
            o.WriteLine($"{verb} {report.ChunksDeleted} chunks ({Render.Bytes(report.BytesFreed)}); {report.ChunksKept} chunks still referenced.");
            if (report.VersionsRemoved.Count > 0) o.WriteLine($"{verb} versions: {string.Join(", ", report.VersionsRemoved)}");
            if (report.PacksDeleted > 0) o.WriteLine($"{verb} {report.PacksDeleted} packs no retained release locates anything in.");
            if (report.PacksPartlyLive > 0)
                o.WriteLine($"Kept {report.PacksPartlyLive} partly live packs whole ({Render.Bytes(report.PackBytesUnreferenced)} in them no retained release uses; " +
                            "freed when the last release using each pack is dropped).");
            if (report.ManifestFilesDeleted > 0) o.WriteLine($"Deleted {report.ManifestFilesDeleted} manifest/signature files.");
            if (report.TempFilesDeleted > 0) o.WriteLine($"Deleted {report.TempFilesDeleted} leftover temp files.");
            if (report.PublishCacheEntriesDropped > 0)
                o.WriteLine($"{(report.DryRun ? "Would drop" : "Dropped")} {report.PublishCacheEntriesDropped} publish-cache entries of deleted chunks.");
        }
        return Task.FromResult(ExitCodes.Success);
    }
}
