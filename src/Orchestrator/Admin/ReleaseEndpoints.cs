using Akka.Actor;
using Akka.Hosting;
using Orchestrator.ChunkStore.Actors.Backends;
using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Admin;

/// <summary>Admin routes of <c>orch release list/show</c> and <c>orch chunks stats/verify</c>: read from the node's store.</summary>
public static class ReleaseEndpoints
{
    /// <summary>Maps <c>/admin/v1/releases...</c> and <c>/admin/v1/chunks/stats|verify</c>.</summary>
    public static void MapReleaseAdmin(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/admin/v1");
        g.MapGet("/releases", List);
        g.MapGet("/releases/{product}/{version}", ShowAsync);
        g.MapGet("/chunks/stats", StatsAsync);
        g.MapPost("/chunks/verify", VerifyAsync);
    }

    private static IResult Unreadable(Exception ex) =>
        HttpProblems.Problem(StatusCodes.Status409Conflict, "store_unreadable", $"The store cannot be read: {ex.Message}");

    /// <summary>
    /// Channel name to version of <paramref name="product"/>: the node's channels (the source of truth, from this node's
    /// channel cache) and, for channels the node does not have yet, the store's channel files (they seed them).
    /// </summary>
    private static Dictionary<string, string> Channels(FileSystemStore store, string product, HttpContext ctx)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var channel in store.EnumerateChannels(product))
        {
            var bytes = store.ReadFile(StoreLayout.ChannelPath(product, channel));
            if (bytes is not null) result[channel] = ChannelPointer.Parse(bytes).Version;
        }
        if (ctx.RequestServices.GetService<Channels.ChannelCache>()?.View is { } view)
            foreach (var c in view.Channels.Where(c => c.Product == product))
            {
                if (c.Current is null) result.Remove(c.Channel);
                else result[c.Channel] = c.Current.Version;
            }
        return result;
    }

    private static ReleaseIndex? Index(FileSystemStore store, string product)
    {
        var bytes = store.ReadFile(StoreLayout.IndexPath(product));
        return bytes is null ? null : ReleaseIndex.Parse(bytes);
    }

    private static IResult List(HttpContext ctx, FileSystemStore store)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        var only = ctx.Request.Query["product"].ToString();
        if (only.Length > 0 && !StoreNames.IsValidProduct(only))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_product", $"Product name '{only}' is invalid (lower-case letters, digits, '.', '_', '-').");
        try
        {
            var products = new List<ProductReleasesView>();
            foreach (var product in store.EnumerateProducts().Where(p => only.Length == 0 || p == only))
            {
                var index = Index(store, product);
                if (index is null) continue;
                var channels = Channels(store, product, ctx);
                products.Add(new ProductReleasesView(product, [.. index.Versions.Select(v => new ReleaseView(v.Version, v.VersionId, v.ManifestPath, v.CreatedUtc,
                    [.. channels.Where(c => c.Value == v.Version).Select(c => c.Key)]))]));
            }
            if (only.Length > 0 && products.Count == 0)
                return HttpProblems.Problem(StatusCodes.Status404NotFound, "product_not_found", $"No release of product '{only}' is published in this node's store.");
            return AdminResults.Ok(new ReleaseListView(products));
        }
        catch (InvalidInputException ex) { return Unreadable(ex); }
    }

    private static async Task<IResult> ShowAsync(string product, string version, HttpContext ctx, FileSystemStore store,
        IRequiredActor<DeviceRegistryActor> registry, NodeSettings settings)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (!StoreNames.IsValidProduct(product) || !StoreNames.IsValidVersion(version))
            return HttpProblems.Problem(StatusCodes.Status400BadRequest, "invalid_release", $"'{product} {version}' is not a valid product name and version.");
        Manifest manifest;
        ReleaseIndexEntry entry;
        Dictionary<string, string> channels;
        try
        {
            var found = Index(store, product)?.FindByVersion(version);
            if (found is null)
                return HttpProblems.Problem(StatusCodes.Status404NotFound, "release_not_found",
                    $"Version '{version}' of '{product}' is not published in this node's store; 'orch release list --product {product}' lists the versions.");
            entry = found;
            var bytes = store.ReadFile(entry.ManifestPath) ?? throw new InvalidInputException($"manifest {entry.ManifestPath} is listed but missing");
            manifest = ManifestSerializer.Parse(bytes);
            channels = Channels(store, product, ctx);
        }
        catch (InvalidInputException ex) { return Unreadable(ex); }
        DeviceList running;
        try
        {
            running = await RegistrySelection.AllAsync(registry.ActorRef, new QueryDevices(null, entry.VersionId, null, null, settings.Devices.RegistryQueryLimit),
                TimeSpan.FromSeconds(5), ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (RegistryLimitExceededException ex) { return DeviceQueryEndpoints.RegistryLimitProblem(ex); }
        return AdminResults.Ok(new ReleaseDetailView(product, version, entry.VersionId, entry.ManifestPath, manifest.CreatedUtc, manifest.ExpiresUtc,
            manifest.Files.Count, manifest.Symlinks.Count, manifest.TotalBytes, manifest.DistinctChunks().Count, manifest.InventoryDigest,
            store.FileExists(StoreLayout.SignaturePathFor(entry.ManifestPath)),
            [.. channels.Where(c => c.Value == version).Select(c => c.Key)],
            running.Devices.Count(d => d.Product == product)));
    }

    private static IResult? FileBackendOnly(HttpContext ctx, out string backend)
    {
        backend = ctx.RequestServices.GetService<IChunkBlobStore>()?.Name ?? "none";
        var settings = ctx.RequestServices.GetRequiredService<NodeSettings>();
        if (!settings.HasRole(NodeRoles.Chunks))
            return HttpProblems.Problem(StatusCodes.Status409Conflict, "no_chunk_store", "This node has no chunks role; call a node that has it.");
        return settings.ChunkStore.Backend == "filesystem"
            ? null
            : HttpProblems.Problem(StatusCodes.Status409Conflict, "backend_unsupported",
                $"Chunk stats and verify read the filesystem chunk store; this node's backend is {settings.ChunkStore.Backend}.");
    }

    private static async Task<IResult> StatsAsync(HttpContext ctx, FileSystemStore store)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (FileBackendOnly(ctx, out var backend) is { } refused) return refused;
        try
        {
            var s = await Task.Run(() => new StoreMaintenance(store).Stats(), ctx.RequestAborted).ConfigureAwait(false);
            return AdminResults.Ok(new ChunkStatsView(backend, s.Chunks, s.ChunkBytes, s.ReferencedChunks, s.UnreferencedChunks, s.UnreferencedBytes,
                s.Products.Count, s.Products.Sum(p => p.Versions)));
        }
        catch (InvalidInputException ex) { return Unreadable(ex); }
    }

    private static async Task<IResult> VerifyAsync(HttpContext ctx, FileSystemStore store)
    {
        if (AdminEndpoints.Authorize(ctx, AdminScopes.Read) is { } denied) return denied;
        if (FileBackendOnly(ctx, out _) is { } refused) return refused;
        var report = await Task.Run(() => new StoreMaintenance(store).Verify(), ctx.RequestAborted).ConfigureAwait(false);
        return AdminResults.Ok(new ChunkVerifyView(report.Ok, report.ChunksChecked, report.ManifestsChecked, report.Problems));
    }
}
