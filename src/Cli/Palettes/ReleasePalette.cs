using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Spectre.Console;

namespace Orchestrator.Cli.Palettes;

/// <summary><c>orch release ...</c>: publishing releases into a store (also <c>orch publish</c>).</summary>
public static class ReleasePalette
{
    /// <summary>Registers the palette and the <c>orch publish</c> shortcut.</summary>
    public static void Register(CommandRegistry registry)
    {
        registry.Palette("release", "publish releases into a content store; list and show those of a node")
            .Add(new CommandSpec("release", "publish",
                "Chunk, encrypt and store a release tree (only absent chunks are written), then sign and commit its manifest: into a " +
                "local store folder (--store), or onto a node over its admin API (--server; only the chunks the node lacks are uploaded).",
                [
                    new SwitchSpec("store", "DIR", "content store folder (created on first publish); or give --server"),
                    new SwitchSpec("server", "URL", "upload to this node instead of a store folder (operate-scope --token or ORCH_TOKEN)"),
                    new SwitchSpec("token", "TOKEN", "admin bearer token for --server (default: ORCH_TOKEN)"),
                    new SwitchSpec("keys", "DIR", "key folder from 'orch keys init'", Required: true),
                    new SwitchSpec("product", "NAME", "product name, e.g. acme-client", Required: true),
                    new SwitchSpec("version", "VERSION", "version string, e.g. 2.1.0", Required: true),
                    new SwitchSpec("version-id", "N", "monotonic version ID (default: latest + 1)"),
                    new SwitchSpec("channel", "NAME", "point this channel (e.g. stable) at the new version"),
                    new SwitchSpec("expires-days", "DAYS", "manifest lifetime in days (default 365)"),
                    new SwitchSpec("chunk-min", "BYTES", $"FastCDC minimum chunk size (default {ChunkingOptions.Default.Min})"),
                    new SwitchSpec("chunk-avg", "BYTES", $"FastCDC average chunk size, a power of two (default {ChunkingOptions.Default.Avg})"),
                    new SwitchSpec("chunk-max", "BYTES", $"FastCDC maximum chunk size (default {ChunkingOptions.Default.Max})"),
                    new SwitchSpec("packs", null, "store the new chunks once, inside pack objects with a signed pack index: devices fetch them " +
                        "in a few Range requests instead of one per chunk (local --store only)"),
                    new SwitchSpec("small-files-below", "BYTES", "pack the files smaller than BYTES (at least 2 such files) into one " +
                        "chunked small-file stream: manifest schema 2, which agents before it refuse (local --store only; default off)"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                ["TREE"],
                Publish))
            .Alias("publish", "release", "publish")
            .Add(new CommandSpec("release", "floor",
                "Sign (release key) and write the product's minimum version, floors/<product>/floor.json: no device installs below it, " +
                "whatever a director or gateway says; agents check it on a downgrade and when their own floor is unknown.",
                [
                    new SwitchSpec("store", "DIR", "content store folder", Required: true),
                    new SwitchSpec("keys", "DIR", "key folder from 'orch keys init' (release key)", Required: true),
                    new SwitchSpec("product", "NAME", "product name", Required: true),
                    new SwitchSpec("min", "VERSION", "lowest version devices may run (a published version)", Required: true),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Floor))
            .Add(new CommandSpec("release", "plan",
                "Print exactly what a device holding --from fetches from the store to install --to (bytes, HTTP requests, objects; manifests " +
                "and signatures included): over the delta built for the pair (delta), over chunks only (chunks), or as the agent would (auto: the delta when built).",
                [
                    new SwitchSpec("store", "DIR", "content store folder", Required: true),
                    new SwitchSpec("product", "NAME", "product name", Required: true),
                    new SwitchSpec("from", "VERSION", "version the device holds", Required: true),
                    new SwitchSpec("to", "VERSION", "version it installs", Required: true),
                    new SwitchSpec("method", "auto|delta|chunks", "default auto"),
                    new SwitchSpec("max-delta-apply-bytes", "BYTES", $"the agent's download.maxDeltaApplyBytes (default {InstallFetchPlanner.DefaultMaxDeltaApplyBytes})"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                Plan))
            .Add(new CommandSpec("release", "chunk-patches",
                "Code each new chunk of --version's changed files as a zstd patch against --base's bytes of the same file (docs/store-format.md, " +
                "\"Chunk patches\"), keep those smaller than the chunk, store them encrypted in pack objects and sign their index: a device " +
                "holding the base file fetches the patch instead of the chunk. Off the publish path; idempotent; memory bounded per worker.",
                [
                    new SwitchSpec("store", "DIR", "content store folder", Required: true),
                    new SwitchSpec("keys", "DIR", "key folder from 'orch keys init' (content key and signing key)", Required: true),
                    new SwitchSpec("product", "NAME", "product name", Required: true),
                    new SwitchSpec("version", "VERSION", "release whose chunks are patched", Required: true),
                    new SwitchSpec("base", "VERSION", "release the patches are coded against (default: the one listed just before --version)"),
                    new SwitchSpec("level", "N", $"zstd level 1..{PatchCodec.MaxLevel} (default {PatchCodec.DefaultLevel})"),
                    new SwitchSpec("json", null, "machine-readable output"),
                ],
                [],
                ChunkPatches));
        ServerCommands.Register(registry, PaletteCatalog.Release, new Dictionary<string, ServerHandler>
        {
            ["list"] = ListAsync,
            ["show"] = ShowAsync,
        });
    }

    private static async Task<int> ListAsync(CommandInvocation call, AdminClient client, CancellationToken cancellationToken)
    {
        var product = call.Optional("product");
        var view = await client.GetAsync<ReleaseListView>("/admin/v1/releases" + (product is null ? "" : "?product=" + Uri.EscapeDataString(product)),
            cancellationToken).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, view);
        else
        {
            Render.Table(call.Console, ["product", "version", "version id", "published", "channels"],
                view.Products.SelectMany(p => p.Versions.Select(v => (IReadOnlyList<string?>)[p.Product, v.Version, v.VersionId.ToString(),
                    Render.Time(v.CreatedUtc), string.Join(",", v.Channels)])));
            call.Console.Out.WriteLine($"{view.Products.Count} product(s), {view.Products.Sum(p => p.Versions.Count)} version(s).");
        }
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(CommandInvocation call, AdminClient client, CancellationToken cancellationToken)
    {
        var (product, version) = (call.Positionals[0], call.Positionals[1]);
        var r = await client.GetAsync<ReleaseDetailView>($"/admin/v1/releases/{Uri.EscapeDataString(product)}/{Uri.EscapeDataString(version)}",
            cancellationToken).ConfigureAwait(false);
        if (call.Json) Render.Json(call.Console.Out, r);
        else
        {
            call.Console.Out.WriteLine($"Release {r.Product} {r.Version} (version ID {r.VersionId})");
            Render.Fields(call.Console.Out,
            [
                ("manifest", r.ManifestPath + (r.SignaturePresent ? " (signed)" : " (SIGNATURE MISSING)")),
                ("published", Render.Time(r.CreatedUtc)),
                ("expires", Render.Time(r.ExpiresUtc)),
                ("files", $"{r.Files} files, {r.Symlinks} symlinks, {Render.Bytes(r.TotalBytes)}"),
                ("chunks", $"{r.DistinctChunks} distinct"),
                ("digest", r.InventoryDigest),
                ("channels", r.Channels.Count == 0 ? null : string.Join(",", r.Channels)),
                ("devices", $"{r.DevicesInstalled} running it"),
            ]);
        }
        return r.SignaturePresent ? ExitCodes.Success : ExitCodes.IntegrityProblem;
    }

    private static Task<int> Plan(CommandInvocation call, CancellationToken cancellationToken)
    {
        var store = FileSystemStore.Open(call.Required("store"), create: false);
        var plan = InstallFetchPlanner.Plan(store, call.Required("product"), call.Required("from"), call.Required("to"), call.Optional("method") ?? "auto",
            call.OptionalLong("max-delta-apply-bytes", 0, long.MaxValue) ?? InstallFetchPlanner.DefaultMaxDeltaApplyBytes);
        if (call.Json) Render.Json(call.Console.Out, new ReleasePlanOutput(plan.Method, plan.Bytes, plan.Requests, plan.Objects));
        else
            call.Console.Out.WriteLine($"{call.Required("product")} {call.Required("from")} -> {call.Required("to")} by {plan.Method}: " +
                $"{Render.Bytes(plan.Bytes)} ({plan.Bytes} bytes) in {plan.Requests} request(s), {plan.Objects} object(s).");
        return Task.FromResult(ExitCodes.Success);
    }

    private static Task<int> ChunkPatches(CommandInvocation call, CancellationToken cancellationToken)
    {
        var level = (int?)call.OptionalLong("level", 1, PatchCodec.MaxLevel) ?? PatchCodec.DefaultLevel;
        var keysDir = call.Required("keys");
        var contentKey = KeyFiles.LoadContentKey(keysDir);
        using var signingKey = KeyFiles.LoadSigningKey(keysDir);
        var store = FileSystemStore.Open(call.Required("store"), create: false);
        var r = new Orchestrator.ChunkStore.Packs.ChunkPatchBuilder(store, contentKey, signingKey) { Level = level }
            .Build(call.Required("product"), call.Required("version"), call.Optional("base"), cancellationToken);
        if (call.Json)
            Render.Json(call.Console.Out, new ChunkPatchesOutput(r.IndexPath, r.Version, r.BaseVersion, r.AlreadyBuilt, r.Candidates, r.Patched,
                r.PatchBytes, r.ChunkBytesReplaced, r.Packs, Math.Round(r.Elapsed.TotalSeconds, 3), Math.Round(r.CpuTime.TotalSeconds, 3)));
        else
        {
            var o = call.Console.Out;
            o.WriteLine(r.AlreadyBuilt
                ? $"Chunk patches of {r.Version} against {r.BaseVersion} already built ({r.Patched} patches); nothing written."
                : $"Built chunk patches of {r.Version} against {r.BaseVersion}");
            if (!r.AlreadyBuilt)
            {
                o.WriteLine($"  patched    {r.Patched} of {r.Candidates} new chunks of changed files ({Render.Bytes(r.PatchBytes)} replacing {Render.Bytes(r.ChunkBytesReplaced)} of chunks)");
                o.WriteLine($"  packs      {r.Packs}");
                o.WriteLine($"  elapsed    {Render.Seconds(r.Elapsed)} (CPU {Render.Seconds(r.CpuTime)})");
            }
            o.WriteLine($"  index      {r.IndexPath}");
        }
        return Task.FromResult(ExitCodes.Success);
    }

    private static Task<int> Floor(CommandInvocation call, CancellationToken cancellationToken)
    {
        var product = call.Required("product");
        var min = call.Required("min");
        Orchestrator.ChunkStore.Validation.StoreNames.RequireProduct(product);
        using var signingKey = KeyFiles.LoadSigningKey(call.Required("keys"));
        var store = FileSystemStore.Open(call.Required("store"), create: false);
        using var writer = store.AcquireWriterLock();
        var indexBytes = store.ReadFile(StoreLayout.IndexPath(product))
            ?? throw new Orchestrator.ChunkStore.Validation.InvalidInputException($"--product '{product}' has no releases in '{store.Root}' (no {StoreLayout.IndexPath(product)}); publish it first.");
        var entry = Orchestrator.ChunkStore.Manifests.ReleaseIndex.Parse(indexBytes).FindByVersion(min)
            ?? throw new Orchestrator.ChunkStore.Validation.InvalidInputException($"--min '{min}' is not a published version of '{product}'; a floor names a release in the index (orch release list).");
        var path = Orchestrator.ChunkStore.Trust.ProductFloor.PathFor(product);
        Directory.CreateDirectory(Path.GetDirectoryName(store.FullPath(path))!);
        store.WriteFile(path, Orchestrator.ChunkStore.Trust.ProductFloor.Create(product, entry.Version, entry.VersionId, signingKey, DateTimeOffset.UtcNow).ToBytes());
        if (call.Json) Render.Json(call.Console.Out, new ReleaseFloorOutput(product, entry.Version, entry.VersionId, path));
        else call.Console.Out.WriteLine($"Product floor of {product} is now {entry.Version} (version ID {entry.VersionId}): {path} signed with the release key.");
        return Task.FromResult(ExitCodes.Success);
    }

    private static async Task<int> Publish(CommandInvocation call, CancellationToken cancellationToken)
    {
        var defaults = ChunkingOptions.Default;
        var chunking = new ChunkingOptions(
            (int)(call.OptionalLong("chunk-min", 1, int.MaxValue) ?? defaults.Min),
            (int)(call.OptionalLong("chunk-avg", 1, int.MaxValue) ?? defaults.Avg),
            (int)(call.OptionalLong("chunk-max", 1, int.MaxValue) ?? defaults.Max));
        var days = call.OptionalLong("expires-days", 1, 36500) ?? 365;
        var request = new PublishRequest(
            call.Required("product"),
            call.Required("version"),
            call.Positionals[0],
            call.OptionalLong("version-id", 1),
            call.Optional("channel"),
            TimeSpan.FromDays(days),
            chunking,
            call.Has("packs"))
        {
            SmallFilesBelow = (int)(call.OptionalLong("small-files-below", 1, ChunkingOptions.MaxChunkLimit) ?? 0),
        };

        var keysDir = call.Required("keys");
        var storeDir = call.Optional("store");
        var server = call.Optional("server");
        if (storeDir is not null && server is not null)
            throw new UsageException("Give --store DIR (publish into a local store folder) or --server URL (upload to a node), not both.");
        if (storeDir is null)
        {
            if (server is null) throw new UsageException("Missing --store DIR (publish into a local store folder) or --server URL (upload to a node).");
            if (request.Packs)
                throw new UsageException("--packs is for a local --store: the upload to a node carries no packs yet; publish without --packs, or into the node's store folder.");
            if (request.SmallFilesBelow > 0)
                throw new UsageException("--small-files-below is for a local --store: the upload to a node writes schema-1 manifests; publish without it, or into the node's store folder.");
            using var client = AdminClient.Resolve(server, call.Optional("token"), call.Console);
            return await ReleaseUpload.RunAsync(call, client, request, keysDir, cancellationToken).ConfigureAwait(false);
        }
        var contentKey = KeyFiles.LoadContentKey(keysDir);
        using var signingKey = KeyFiles.LoadSigningKey(keysDir);
        var store = FileSystemStore.Open(storeDir, create: true);
        var publisher = new Publisher(store, contentKey, signingKey);

        PublishResult result;
        if (call.Console.IsTerminal && !call.Json)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(call.Console.Out) });
            PublishResult? done = null;
            console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"publish {request.Product} {request.Version}", maxValue: 1);
                    done = publisher.Publish(request, new InlineProgress(p =>
                    {
                        task.MaxValue = Math.Max(1, p.BytesTotal);
                        task.Value = p.BytesDone;
                    }), cancellationToken);
                    task.Value = task.MaxValue;
                });
            result = done!;
        }
        else result = publisher.Publish(request, null, cancellationToken);

        var seconds = Math.Max(result.Elapsed.TotalSeconds, 1e-6);
        if (call.Json)
            Render.Json(call.Console.Out, new PublishOutput(
                result.Product,
                result.Version,
                result.VersionId,
                result.ManifestPath,
                StoreLayout.SignaturePathFor(result.ManifestPath),
                result.Files,
                result.Symlinks,
                result.BytesTotal,
                result.ChunksTotal,
                result.ChunksDistinct,
                result.ChunksNew,
                result.BytesNew,
                result.InventoryDigest,
                Math.Round(result.Elapsed.TotalSeconds, 3),
                Math.Round(result.BytesTotal / 1048576.0 / seconds, 1),
                request.Channel));
        else
        {
            var o = call.Console.Out;
            o.WriteLine($"Published {result.Product} {result.Version} (version ID {result.VersionId}){(request.Channel is null ? "" : $", channel {request.Channel}")}");
            o.WriteLine($"  files      {result.Files} files, {result.Symlinks} symlinks, {Render.Bytes(result.BytesTotal)}");
            o.WriteLine($"  chunks     {result.ChunksTotal} total, {result.ChunksDistinct} distinct, {result.ChunksNew} new");
            o.WriteLine($"  bytes new  {Render.Bytes(result.BytesNew)} stored");
            o.WriteLine($"  elapsed    {Render.Seconds(result.Elapsed)} ({Render.Bytes((long)(result.BytesTotal / seconds))}/s)");
            o.WriteLine($"  manifest   {result.ManifestPath}");
        }
        return ExitCodes.Success;
    }

    /// <summary>Reports on the publishing thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class InlineProgress(Action<PublishProgress> report) : IProgress<PublishProgress>
    {
        public void Report(PublishProgress value) => report(value);
    }
}
