using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>The real agent process pulls releases from nginx serving the store folder as a plain mirror.</summary>
public sealed class AgentNginxMirrorTests(TwoReleases r, ITestOutputHelper output) : IClassFixture<TwoReleases>
{
    [NginxFact]
    public async Task Installs_and_upgrades_from_nginx_fetching_only_missing_chunks_and_resuming_with_range()
    {
        using var nginx = await NginxMirror.StartAsync(r.Store.Root);
        // A hostile mirror first in the list: it serves garbage for everything.
        await using var hostile = await TestServer.StartAsync(async ctx => await ctx.Response.Body.WriteAsync(new byte[300]));
        using var d = new TestDevice(r.Gateway.BaseUrl, mirrors: [hostile.BaseUrl, nginx.BaseUrl],
            contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        r.Gateway.StoreDown = true; // the gateway only does check-in here
        var packIndex = Path.Combine(r.Store.Root, StoreLayout.PackIndexPath("acme", r.V2.Version));
        try
        {
            string[] run = ["run", "--config", d.Config.SourcePath!, "--no-client"];
            r.Gateway.Decide = FakeGateway.Assign(r.V1.VersionId, r.V1.Version, r.V1.ManifestPath, r.V1.InventoryDigest);
            var first = await AgentProcess.RunAsync(run);
            output.WriteLine(first.Output + first.Error);
            Assert.Equal(0, first.ExitCode);
            Assert.Equal(r.V1.InventoryDigest, Releases.ClientDigest(d));

            // From here on a store published without packs (an older orch): every chunk is its own object.
            r.Store.AddChunkObjectsForPackedChunks();
            // Half of one v2-only chunk is already on disk from an interrupted download: nginx must resume it.
            var v1Chunks = r.Store.Manifest(r.V1).DistinctChunks();
            var v2Only = r.Store.Manifest(r.V2).DistinctChunks().Except(v1Chunks).ToList();
            var partialId = v2Only.First(id => new FileInfo(Path.Combine(r.Store.Root, StoreLayout.ChunkPath(id))).Length > 1000);
            var stored = File.ReadAllBytes(Path.Combine(r.Store.Root, StoreLayout.ChunkPath(partialId)));
            Directory.CreateDirectory(d.Layout.PartialChunks);
            File.WriteAllBytes(Path.Combine(d.Layout.PartialChunks, partialId.Hex + ".part"), stored[..(stored.Length / 2)]);
            File.WriteAllText(nginx.AccessLog, "");
            // nginx first now, so the resume is not lost to the hostile mirror ignoring the Range header.
            File.WriteAllText(d.Config.SourcePath!, (d.Config with { Mirrors = [nginx.BaseUrl, hostile.BaseUrl] }).ToJson());

            // A store published without packs (an older orch): the agent's one request for the pack index gets a 404,
            // and every chunk is its own object.
            File.Move(packIndex, packIndex + ".away");
            r.Gateway.Decide = FakeGateway.Assign(r.V2.VersionId, r.V2.Version, r.V2.ManifestPath, r.V2.InventoryDigest);
            var second = await AgentProcess.RunAsync(run);
            output.WriteLine(second.Output + second.Error);
            Assert.Equal(0, second.ExitCode);
            Assert.Equal(r.V2.InventoryDigest, Releases.ClientDigest(d));

            var log = File.ReadAllLines(nginx.AccessLog);
            output.WriteLine(string.Join('\n', log));
            var chunkGets = log.Where(l => l.Contains("GET /chunks/")).ToList();
            Assert.All(chunkGets, l => Assert.True(v2Only.Any(id => l.Contains(id.Hex)), $"fetched a chunk v1 already had: {l}"));
            Assert.Contains(log, l => l.Contains(partialId.Hex) && l.Contains("\" 206 "));
            Assert.True(chunkGets.Count <= v2Only.Count, $"{chunkGets.Count} chunk requests for {v2Only.Count} new chunks");
            Assert.Contains(log, l => l.Contains($"GET /{StoreLayout.PackIndexPath("acme", r.V2.Version)} ") && l.Contains("\" 404 "));
        }
        finally
        {
            if (File.Exists(packIndex + ".away")) File.Move(packIndex + ".away", packIndex);
            r.Gateway.StoreDown = false;
        }
    }
}

/// <summary>
/// The real agent upgrades through byte ranges of pack objects served by nginx (its own fixture: the fake gateway
/// accepts one device's request sequence, so each device needs its own).
/// </summary>
public sealed class AgentNginxPackTests(TwoReleases r, ITestOutputHelper output) : IClassFixture<TwoReleases>
{
    [NginxFact]
    public async Task Upgrades_from_nginx_through_byte_ranges_of_pack_objects_and_no_chunk_objects()
    {
        using var nginx = await NginxMirror.StartAsync(r.Store.Root);
        using var d = new TestDevice(r.Gateway.BaseUrl, mirrors: [nginx.BaseUrl],
            contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        r.Gateway.StoreDown = true;
        try
        {
            string[] run = ["run", "--config", d.Config.SourcePath!, "--no-client"];
            r.Gateway.Decide = FakeGateway.Assign(r.V1.VersionId, r.V1.Version, r.V1.ManifestPath, r.V1.InventoryDigest);
            var first = await AgentProcess.RunAsync(run);
            output.WriteLine(first.Output + first.Error);
            Assert.Equal(0, first.ExitCode);
            File.WriteAllText(nginx.AccessLog, "");

            r.Gateway.Decide = FakeGateway.Assign(r.V2.VersionId, r.V2.Version, r.V2.ManifestPath, r.V2.InventoryDigest);
            var second = await AgentProcess.RunAsync(run);
            output.WriteLine(second.Output + second.Error);
            Assert.Equal(0, second.ExitCode);
            Releases.AssertTreeIs(d, r.V2.InventoryDigest, Releases.V2());

            var log = File.ReadAllLines(nginx.AccessLog);
            output.WriteLine(string.Join('\n', log));
            Assert.DoesNotContain(log, l => l.Contains("GET /chunks/"));
            Assert.Contains(log, l => l.Contains($"GET /{StoreLayout.PackIndexPath("acme", r.V2.Version)} ") && l.Contains("\" 200 "));
            var packGets = log.Where(l => l.Contains("GET /packs/")).ToList();
            Assert.NotEmpty(packGets);
            Assert.All(packGets, l => Assert.Contains("\" 206 ", l));
            var v2Only = r.Store.Manifest(r.V2).DistinctChunks().Except(r.Store.Manifest(r.V1).DistinctChunks()).ToList();
            Assert.True(packGets.Count < v2Only.Count, $"{packGets.Count} pack requests for {v2Only.Count} new chunks");
            // The packs are the store's only copy of these chunks: a plain mirror of the folder serves them all.
            Assert.All(v2Only, id => Assert.False(File.Exists(Path.Combine(r.Store.Root, StoreLayout.ChunkPath(id)))));
        }
        finally
        {
            r.Gateway.StoreDown = false;
        }
    }
}
