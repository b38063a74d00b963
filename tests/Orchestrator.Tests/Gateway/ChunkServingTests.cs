using System.Net.Http.Headers;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>Chunk and manifest serving: ETag, immutable caching, 304, Range/206/416, HEAD, bad ids.</summary>
public sealed class ChunkServingTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    private async Task<HttpResponseMessage> GetAsync(string path, string secret, string deviceId = "chunk-dev", Action<HttpRequestMessage>? tweak = null, HttpMethod? method = null)
    {
        using var req = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        DeviceSigning.SignAs(req, deviceId, secret);
        tweak?.Invoke(req);
        return await Node.Http.SendAsync(req);
    }

    private async Task<string> SecretAsync() => await fixture.SecretForAsync("chunk-dev");

    private static byte[] Bytes(int n, int seed) { var b = new byte[n]; new Random(seed).NextBytes(b); return b; }

    [Fact]
    public async Task Chunk_is_served_with_etag_and_immutable_caching()
    {
        var secret = await SecretAsync();
        var data = Bytes(100_000, 1);
        var id = Node.WriteChunk(data);
        using var res = await GetAsync($"/v1/store/chunks/{id[..2]}/{id}", secret);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(data, await res.Content.ReadAsByteArrayAsync());
        Assert.Equal($"\"{id}\"", res.Headers.ETag!.Tag);
        Assert.Equal("public, max-age=31536000, immutable", res.Headers.CacheControl!.ToString());
        Assert.Contains("bytes", res.Headers.AcceptRanges);
        Assert.Equal("application/octet-stream", res.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task If_none_match_gives_304_without_body()
    {
        var secret = await SecretAsync();
        var id = Node.WriteChunk(Bytes(5000, 2));
        using var res = await GetAsync($"/v1/store/chunks/{id[..2]}/{id}", secret, tweak: r => r.Headers.IfNoneMatch.Add(new EntityTagHeaderValue($"\"{id}\"")));
        Assert.Equal(HttpStatusCode.NotModified, res.StatusCode);
        Assert.Empty(await res.Content.ReadAsByteArrayAsync());
        Assert.Equal($"\"{id}\"", res.Headers.ETag!.Tag);

        // "*" means "if it exists": 304 for a stored chunk, 404 for an absent one.
        using var star = await GetAsync($"/v1/store/chunks/{id[..2]}/{id}", secret, tweak: r => r.Headers.IfNoneMatch.Add(EntityTagHeaderValue.Any));
        Assert.Equal(HttpStatusCode.NotModified, star.StatusCode);
        var absent = new string('9', 64);
        using var starAbsent = await GetAsync($"/v1/store/chunks/99/{absent}", secret, tweak: r => r.Headers.IfNoneMatch.Add(EntityTagHeaderValue.Any));
        Assert.Equal(HttpStatusCode.NotFound, starAbsent.StatusCode);
    }

    [Fact]
    public async Task Range_requests_resume_and_out_of_range_is_416()
    {
        var secret = await SecretAsync();
        var data = Bytes(10_000, 3);
        var id = Node.WriteChunk(data);
        var path = $"/v1/store/chunks/{id[..2]}/{id}";

        using var mid = await GetAsync(path, secret, tweak: r => r.Headers.Range = new RangeHeaderValue(100, 199));
        Assert.Equal(HttpStatusCode.PartialContent, mid.StatusCode);
        Assert.Equal(data[100..200], await mid.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 100-199/10000", mid.Content.Headers.ContentRange!.ToString());

        using var tail = await GetAsync(path, secret, tweak: r => r.Headers.Range = new RangeHeaderValue(9000, null));
        Assert.Equal(HttpStatusCode.PartialContent, tail.StatusCode);
        Assert.Equal(data[9000..], await tail.Content.ReadAsByteArrayAsync());

        using var beyond = await GetAsync(path, secret, tweak: r => r.Headers.Range = new RangeHeaderValue(20_000, null));
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, beyond.StatusCode);
        Assert.Equal("bytes */10000", beyond.Content.Headers.ContentRange!.ToString());
    }

    [Fact]
    public async Task Pack_objects_are_served_from_the_store_folder_with_byte_ranges_and_bad_or_absent_ids_are_refused()
    {
        var secret = await SecretAsync();
        var data = Bytes(50_000, 7);
        var id = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data));
        Directory.CreateDirectory(Path.Combine(Node.StoreRoot, "packs", id[..2]));
        File.WriteAllBytes(Path.Combine(Node.StoreRoot, "packs", id[..2], id), data);
        var path = $"/v1/store/packs/{id[..2]}/{id}";

        using var range = await GetAsync(path, secret, tweak: r => r.Headers.Range = new RangeHeaderValue(1000, 30_999));
        Assert.Equal(HttpStatusCode.PartialContent, range.StatusCode);
        Assert.Equal(data[1000..31_000], await range.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 1000-30999/50000", range.Content.Headers.ContentRange!.ToString());
        Assert.Equal($"\"{id}\"", range.Headers.ETag!.Tag);
        Assert.Equal("public, max-age=31536000, immutable", range.Headers.CacheControl!.ToString());

        using var unsigned = await Node.Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
        var absent = new string('7', 64);
        using var missing = await GetAsync($"/v1/store/packs/77/{absent}", secret);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("pack_not_found", (await missing.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        using var bad = await GetAsync($"/v1/store/packs/00/{id}", secret);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("invalid_pack_id", (await bad.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
    }

    [Fact]
    public async Task Head_gives_length_and_etag_without_body()
    {
        var secret = await SecretAsync();
        var id = Node.WriteChunk(Bytes(4321, 4));
        using var res = await GetAsync($"/v1/store/chunks/{id[..2]}/{id}", secret, method: HttpMethod.Head);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(4321, res.Content.Headers.ContentLength);
        Assert.Equal($"\"{id}\"", res.Headers.ETag!.Tag);
        Assert.Empty(await res.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Bad_and_unknown_chunk_ids()
    {
        var secret = await SecretAsync();
        var id = new string('c', 64);
        using var missing = await GetAsync($"/v1/store/chunks/cc/{id}", secret);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("chunk_not_found", (await missing.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        foreach (var bad in new[] { $"/v1/store/chunks/dd/{id}", "/v1/store/chunks/cc/CCCC", $"/v1/store/chunks/cc/{id.ToUpperInvariant()}", "/v1/store/chunks/..%2F..%2Fdata/x" })
        {
            using var res = await GetAsync(bad, secret);
            Assert.True(res.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{bad} -> {res.StatusCode}");
            Assert.NotEqual(HttpStatusCode.OK, res.StatusCode);
        }
    }

    [Fact]
    public async Task Manifests_and_channels_are_served_with_content_etag()
    {
        var secret = await SecretAsync();
        var dir = Path.Combine(Node.StoreRoot, "channels", "gizmo");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "stable.json"), "{\"version\":\"1.0.0\"}");
        using var res = await GetAsync("/v1/store/channels/gizmo/stable.json", secret);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("{\"version\":\"1.0.0\"}", await res.Content.ReadAsStringAsync());
        Assert.Equal("application/json", res.Content.Headers.ContentType!.MediaType);
        Assert.Equal("no-cache", res.Headers.CacheControl!.ToString());
        var etag = res.Headers.ETag!;
        using var again = await GetAsync("/v1/store/channels/gizmo/stable.json", secret, tweak: r => r.Headers.IfNoneMatch.Add(etag));
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
        using var missing = await GetAsync("/v1/store/manifests/gizmo/9.9.9.json", secret);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var traversal = await GetAsync("/v1/store/manifests/gizmo/..%2F..%2Fdata%2Forchestrator.db", secret);
        Assert.NotEqual(HttpStatusCode.OK, traversal.StatusCode);
    }

    [Fact]
    public async Task Metrics_count_served_chunks_and_health_endpoints_answer()
    {
        var secret = await SecretAsync();
        var id = Node.WriteChunk(Bytes(777, 5));
        using (var res = await GetAsync($"/v1/store/chunks/{id[..2]}/{id}", secret)) Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        var metrics = await Node.Http.GetStringAsync("/metrics");
        Assert.Contains("orch_gateway_chunks_served", metrics);
        Assert.Contains("orch_gateway_chunk_bytes", metrics);
        Assert.Contains("orch_chunk_cache_misses", metrics);
        using var live = await Node.Http.GetAsync("/health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var ready = await Node.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var clusterReq = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/cluster");
        clusterReq.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
        using var clusterRes = await Node.Http.SendAsync(clusterReq);
        var self = (await clusterRes.Content.ReadFromJsonAsync<Orchestrator.Messages.Admin.ClusterView>(Orchestrator.Messages.Admin.AdminJson.Options))!
            .Members.Single(m => m.IsSelf);
        Assert.Equal(["chunks", "devices", "gateway", "rollouts"], self.Roles);
        Assert.Equal("Up", self.Status);
    }
}
