using System.Diagnostics;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Channels;

namespace Orchestrator.Cli.Palettes;

/// <summary>
/// <c>orch release publish --server URL</c>: chunks, encrypts and signs the release here (keys never leave this
/// machine), then sends the node the manifest, its signature and the root documents, uploads only the chunk objects
/// the node names as missing, and commits. A repeat after an interruption uploads only what is still missing.
/// </summary>
internal static class ReleaseUpload
{
    private const int ParallelUploads = 4;

    /// <summary>Runs the upload for <paramref name="request"/> (its <c>VersionId</c> is asked of the node when absent).</summary>
    public static async Task<int> RunAsync(CommandInvocation call, AdminClient client, PublishRequest request, string keysDir, CancellationToken ct)
    {
        var stopwatch = Stopwatch.StartNew();
        var contentKey = KeyFiles.LoadContentKey(keysDir);
        using var signingKey = KeyFiles.LoadSigningKey(keysDir);
        var roots = RootDocuments(keysDir);
        var versionId = request.VersionId ?? await NextVersionIdAsync(client, request.Product, ct).ConfigureAwait(false);

        var staging = Path.Combine(Path.GetTempPath(), "orch-publish-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var store = FileSystemStore.Open(staging, create: true);
            // The upload route carries chunk objects, manifest and signature only: packs would be written here for nothing
            // (devices of a node published this way fetch chunk objects).
            var result = new Publisher(store, contentKey, signingKey).Publish(request with { VersionId = versionId, Channel = null, Packs = false }, null, ct);
            var manifestBytes = store.ReadFile(result.ManifestPath)!;
            var body = new ReleaseUploadRequest(Convert.ToBase64String(manifestBytes),
                Convert.ToBase64String(store.ReadFile(StoreLayout.SignaturePathFor(result.ManifestPath))!), roots);
            var route = $"/admin/v1/releases/{Uri.EscapeDataString(request.Product)}/{Uri.EscapeDataString(request.Version)}";

            var plan = await client.PostAsync<ReleaseUploadPlan>(route + "/upload", body, ct).ConfigureAwait(false);
            long bytesUploaded = 0;
            var uploaded = 0;
            await Parallel.ForEachAsync(plan.Missing, new ParallelOptions { MaxDegreeOfParallelism = ParallelUploads, CancellationToken = ct }, async (id, token) =>
            {
                var bytes = store.ReadChunk(ChunkId.Parse(id))
                    ?? throw new InvalidOperationException($"The node asked for chunk {id}, which this release does not contain; is the node's store damaged?");
                await client.PutBytesAsync($"/admin/v1/chunks/{id}", bytes, token).ConfigureAwait(false);
                Interlocked.Add(ref bytesUploaded, bytes.Length);
                Interlocked.Increment(ref uploaded);
            }).ConfigureAwait(false);
            var committed = await client.PostAsync<ReleaseCommitted>(route + "/commit", body, ct).ConfigureAwait(false);
            if (request.Channel is not null)
                await client.PostAsync<ChannelView>($"/admin/v1/channels/{Uri.EscapeDataString(request.Product)}/{Uri.EscapeDataString(request.Channel)}",
                    new ChannelSetRequest(request.Version, null, "published with orch release publish --server"), ct).ConfigureAwait(false);

            var output = new ReleaseUploadOutput(client.Server.ToString(), committed.Product, committed.Version, committed.VersionId, committed.ManifestPath,
                result.Files, result.BytesTotal, committed.Chunks, uploaded, bytesUploaded, committed.RootsAdded, committed.AlreadyPublished || plan.AlreadyPublished,
                request.Channel, Math.Round(stopwatch.Elapsed.TotalSeconds, 3));
            if (call.Json) Render.Json(call.Console.Out, output);
            else
            {
                var o = call.Console.Out;
                o.WriteLine(output.AlreadyPublished
                    ? $"{output.Product} {output.Version} (version ID {output.VersionId}) was already published on {output.Server} with this content; nothing uploaded."
                    : $"Published {output.Product} {output.Version} (version ID {output.VersionId}) on {output.Server}{(request.Channel is null ? "" : $", channel {request.Channel}")}");
                o.WriteLine($"  files      {result.Files} files, {Render.Bytes(result.BytesTotal)}");
                o.WriteLine($"  chunks     {output.Chunks} distinct, {uploaded} uploaded ({Render.Bytes(bytesUploaded)}), {output.Chunks - uploaded} already on the node");
                if (output.RootsAdded.Count > 0) o.WriteLine($"  roots      node now holds root version(s) {string.Join(", ", output.RootsAdded)}");
                o.WriteLine($"  manifest   {output.ManifestPath}");
            }
            return ExitCodes.Success;
        }
        finally
        {
            try { Directory.Delete(staging, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>Every root document version of the keys folder (<c>root-N.json</c>), oldest first.</summary>
    private static List<string> RootDocuments(string keysDir)
    {
        var roots = new List<string>();
        for (long n = 1; File.Exists(Path.Combine(keysDir, TrustFiles.VersionFile(n))); n++)
            roots.Add(Convert.ToBase64String(File.ReadAllBytes(Path.Combine(keysDir, TrustFiles.VersionFile(n)))));
        if (roots.Count == 0)
            throw new UsageException($"--keys '{keysDir}' holds no root document ({TrustFiles.VersionFile(1)}); use the folder of 'orch keys init'.");
        return roots;
    }

    private static async Task<long> NextVersionIdAsync(AdminClient client, string product, CancellationToken ct)
    {
        try
        {
            var list = await client.GetAsync<ReleaseListView>("/admin/v1/releases?product=" + Uri.EscapeDataString(product), ct).ConfigureAwait(false);
            return list.Products.SelectMany(p => p.Versions).Select(v => v.VersionId).DefaultIfEmpty(0).Max() + 1;
        }
        catch (AdminApiException e) when (e.ExitCode == ExitCodes.NotFound)
        {
            return 1; // the node has no release of this product yet
        }
    }
}
