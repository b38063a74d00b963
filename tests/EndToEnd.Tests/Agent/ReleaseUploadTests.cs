using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Orchestrator.Messages.Admin;
using Orchestrator.Node.Gateway;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// <c>orch release publish --server</c> (a real orch process) puts a locally signed release on a node that never saw the
/// keys folder or a store folder; a real agent installs it. The node takes only what verifies.
/// </summary>
public sealed class ReleaseUploadTests(ITestOutputHelper output)
{
    private static string Tree(TempDir dir, string name, IReadOnlyDictionary<string, byte[]> files)
    {
        var tree = dir.Folder("trees/" + name);
        TestStore.WriteTree(tree, files);
        return tree;
    }

    private static Task<OrchProcess.Result> Publish(NodeUnderTest node, ITestOutputHelper log, string tree, TrustKeys keys, string version, params string[] extra) =>
        OrchProcess.RunAsync(node, log, ["release", "publish", tree, "--server", node.BaseUrl, "--keys", keys.Directory, "--product", "acme", "--version", version, "--json", .. extra]);

    private static HttpRequestMessage Operate(HttpMethod method, string path, HttpContent? content = null)
    {
        var req = new HttpRequestMessage(method, path) { Content = content };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        return req;
    }

    [Fact]
    public async Task A_release_published_over_the_admin_api_installs_on_a_device_and_the_next_version_uploads_only_new_chunks()
    {
        using var keys = new TrustKeys();
        using var dir = new TempDir();
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings());

        var first = await Publish(node, output, Tree(dir, "v1", Releases.V1()), keys, "1.0");
        Assert.Equal(0, first.ExitCode);
        var v1 = first.Json;
        Assert.Equal(1, v1.GetProperty("versionId").GetInt64());
        Assert.Equal(v1.GetProperty("chunks").GetInt32(), v1.GetProperty("chunksUploaded").GetInt32());
        Assert.Equal([1L], v1.GetProperty("rootsAdded").EnumerateArray().Select(e => e.GetInt64()));
        // What the node holds now is what the keys folder signed: its root, the manifest and its signature.
        Assert.Equal(File.ReadAllBytes(Path.Combine(keys.Directory, TrustFiles.VersionFile(1))), File.ReadAllBytes(Path.Combine(node.StoreRoot, TrustFiles.StorePath(1))));
        var manifestPath = v1.GetProperty("manifestPath").GetString()!;
        var manifest = ManifestSerializer.Parse(File.ReadAllBytes(Path.Combine(node.StoreRoot, manifestPath)));

        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync("up-1"), deviceId: "up-1",
            contentKey: KeyFiles.LoadContentKey(keys.Directory).ToBytes(), trustRoot: keys.RootDocument);
        await node.AssignAsync("up-1", "acme", "1.0", 1, manifestPath);
        var run = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(run.Output + run.Error);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(manifest.InventoryDigest, Releases.ClientDigest(d));
        var history = await OrchProcess.OkAsync(node, output, "device", "history", "up-1");
        Assert.Contains("checked in with nothing of acme installed: told to upgrade to 1.0 (version ID 1)", history.Output);
        Assert.Contains("upgrade done: now running version ID 1", history.Output);

        // 2.0 shares most files with 1.0: the node asks only for the chunks it lacks; the version ID follows the node's.
        var second = await Publish(node, output, Tree(dir, "v2", Releases.V2()), keys, "2.0", "--channel", "stable");
        Assert.Equal(0, second.ExitCode);
        var v2 = second.Json;
        Assert.Equal(2, v2.GetProperty("versionId").GetInt64());
        Assert.InRange(v2.GetProperty("chunksUploaded").GetInt32(), 1, v2.GetProperty("chunks").GetInt32() - 1);
        Assert.Empty(v2.GetProperty("rootsAdded").EnumerateArray());
        var list = await OrchProcess.OkAsync(node, output, "release", "list", "--product", "acme", "--json");
        var versions = list.Json.GetProperty("products")[0].GetProperty("versions").EnumerateArray().ToList();
        Assert.Equal(["1.0", "2.0"], versions.Select(v => v.GetProperty("version").GetString()));
        Assert.Contains("stable", versions[1].GetProperty("channels").EnumerateArray().Select(c => c.GetString()));

        // Publishing 2.0 again (a new manifest under a published version) is refused and changes nothing.
        var index = File.ReadAllBytes(Path.Combine(node.StoreRoot, StoreLayout.IndexPath("acme")));
        var again = await Publish(node, output, Tree(dir, "v2b", Releases.V2()), keys, "2.0", "--version-id", "3");
        Assert.Equal(9, again.ExitCode);
        Assert.Contains("already published", again.Output + again.Error);
        Assert.Equal(index, File.ReadAllBytes(Path.Combine(node.StoreRoot, StoreLayout.IndexPath("acme"))));
    }

    [Cluster.Support.PostgresClusterFact]
    public async Task A_node_whose_chunks_live_in_postgresql_takes_an_upload_and_serves_it_to_a_device()
    {
        using var keys = new TrustKeys();
        using var dir = new TempDir();
        var (_, database) = await Cluster.Support.LocalCluster.FreshDatabaseAsync(Cluster.Support.PostgresClusterFactAttribute.RequiredConnectionString(), "orch_upload_");
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>(keys.NodeSettings())
        {
            ["Database:Provider"] = "postgresql",
            ["Database:ConnectionString"] = database,
            ["ChunkStore:Backend"] = "postgresql",
        });

        var first = await Publish(node, output, Tree(dir, "v1", Releases.V1()), keys, "1.0");
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(first.Json.GetProperty("chunks").GetInt32(), first.Json.GetProperty("chunksUploaded").GetInt32());
        // The chunk objects went to PostgreSQL, not to the node's disk.
        Assert.False(Directory.Exists(Path.Combine(node.StoreRoot, "chunks")) && Directory.EnumerateFiles(Path.Combine(node.StoreRoot, "chunks"), "*", SearchOption.AllDirectories).Any());
        var manifest = ManifestSerializer.Parse(File.ReadAllBytes(Path.Combine(node.StoreRoot, first.Json.GetProperty("manifestPath").GetString()!)));

        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync("pg-up-1"), deviceId: "pg-up-1",
            contentKey: KeyFiles.LoadContentKey(keys.Directory).ToBytes(), trustRoot: keys.RootDocument);
        await node.AssignAsync("pg-up-1", "acme", "1.0", 1, first.Json.GetProperty("manifestPath").GetString()!);
        var run = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(run.Output + run.Error);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(manifest.InventoryDigest, Releases.ClientDigest(d));

        // The next version asks the PostgreSQL backend what it lacks: only new chunks travel.
        var second = await Publish(node, output, Tree(dir, "v2", Releases.V2()), keys, "2.0");
        Assert.Equal(0, second.ExitCode);
        Assert.InRange(second.Json.GetProperty("chunksUploaded").GetInt32(), 1, second.Json.GetProperty("chunks").GetInt32() - 1);
    }

    [Fact]
    public async Task An_interrupted_upload_resumes_with_what_is_missing_and_nothing_unverified_is_taken()
    {
        using var keys = new TrustKeys();
        using var dir = new TempDir();
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings());
        // The release as orch would send it (chunk objects, no packs), signed here with the same keys.
        using var local = new TestStore(dir.Folder("local"), keys.Directory);
        var r = local.Publish("1.0", Releases.V1(), packs: false);
        var body = new ReleaseUploadRequest(
            Convert.ToBase64String(local.Store.ReadFile(r.ManifestPath)!),
            Convert.ToBase64String(local.Store.ReadFile(StoreLayout.SignaturePathFor(r.ManifestPath))!),
            [Convert.ToBase64String(File.ReadAllBytes(Path.Combine(keys.Directory, TrustFiles.VersionFile(1))))]);

        using var planned = await node.Http.SendAsync(Operate(HttpMethod.Post, "admin/v1/releases/acme/1.0/upload", JsonContent.Create(body, options: HttpProblems.Json)));
        Assert.Equal(HttpStatusCode.OK, planned.StatusCode);
        var plan = (await planned.Content.ReadFromJsonAsync<ReleaseUploadPlan>(HttpProblems.Json))!;
        Assert.True(plan.Missing.Count >= 3, $"the release should need several chunks, got {plan.Missing.Count}");

        // A damaged object is refused and not stored.
        var firstBytes = local.Store.ReadChunk(Orchestrator.ChunkStore.Codec.ChunkId.Parse(plan.Missing[0]))!;
        var damaged = (byte[])firstBytes.Clone();
        damaged[^1] ^= 0x01;
        using (var bad = await node.Http.SendAsync(Operate(HttpMethod.Put, $"admin/v1/chunks/{plan.Missing[0]}", new ByteArrayContent(damaged))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("chunk_id_mismatch", await bad.Content.ReadAsStringAsync());
        }
        Assert.False(File.Exists(Path.Combine(node.StoreRoot, StoreLayout.ChunkPath(Orchestrator.ChunkStore.Codec.ChunkId.Parse(plan.Missing[0])))));

        // Half the objects arrive, then the upload stops: a commit now is refused and the release stays invisible.
        var sent = plan.Missing.Take(plan.Missing.Count / 2).ToList();
        foreach (var id in sent)
            using (var put = await node.Http.SendAsync(Operate(HttpMethod.Put, $"admin/v1/chunks/{id}", new ByteArrayContent(local.Store.ReadChunk(Orchestrator.ChunkStore.Codec.ChunkId.Parse(id))!))))
                Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        using (var early = await node.Http.SendAsync(Operate(HttpMethod.Post, "admin/v1/releases/acme/1.0/commit", JsonContent.Create(body, options: HttpProblems.Json))))
        {
            Assert.Equal(HttpStatusCode.Conflict, early.StatusCode);
            Assert.Contains("chunks_missing", await early.Content.ReadAsStringAsync());
        }
        Assert.False(File.Exists(Path.Combine(node.StoreRoot, StoreLayout.IndexPath("acme"))));

        // The plan now names only the rest.
        using var replanned = await node.Http.SendAsync(Operate(HttpMethod.Post, "admin/v1/releases/acme/1.0/upload", JsonContent.Create(body, options: HttpProblems.Json)));
        var rest = (await replanned.Content.ReadFromJsonAsync<ReleaseUploadPlan>(HttpProblems.Json))!;
        Assert.Equal(plan.Missing.Except(sent).Order(), rest.Missing.Order());
    }

    [Fact]
    public async Task A_release_signed_with_keys_outside_the_nodes_root_is_refused_and_the_store_is_unchanged()
    {
        using var keys = new TrustKeys();
        using var stranger = new TrustKeys();
        using var dir = new TempDir();
        await using var node = await NodeUnderTest.StartAsync(keys.NodeSettings());
        Assert.Equal(0, (await Publish(node, output, Tree(dir, "v1", Releases.V1()), keys, "1.0")).ExitCode);
        var before = Directory.GetFiles(node.StoreRoot, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".lock", StringComparison.Ordinal)).Order().ToList();

        var refused = await Publish(node, output, Tree(dir, "v2", Releases.V2()), stranger, "2.0");
        Assert.Equal(3, refused.ExitCode);
        Assert.Contains("belongs to another trust root", refused.Output + refused.Error);
        var after = Directory.GetFiles(node.StoreRoot, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".lock", StringComparison.Ordinal)).Order().ToList();
        Assert.Equal(before, after);
    }
}
