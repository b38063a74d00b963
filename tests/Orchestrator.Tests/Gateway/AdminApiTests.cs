using System.Net.Http.Headers;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>Admin API: token scopes and credential provisioning (what <c>orch device provision</c> calls).</summary>
public sealed class AdminApiTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token, HttpContent? content = null)
    {
        using var req = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Node.Http.SendAsync(req);
    }

    [Fact]
    public async Task Tokens_and_scopes_are_enforced()
    {
        using var none = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-1/credential", null);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var wrong = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-1/credential", "not-a-token");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using var readOnly = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-1/credential", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.Forbidden, readOnly.StatusCode);
        using var stillAbsent = await SendAsync(HttpMethod.Get, "/admin/v1/devices/adm-1/credential", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.NotFound, stillAbsent.StatusCode);
    }

    [Fact]
    public async Task Provision_shows_the_secret_once_refuses_duplicates_and_rotates_on_request()
    {
        using var created = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-2/credential", TestNode.OperateToken);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var first = (await created.Content.ReadFromJsonAsync<ProvisionResponse>(HttpProblems.Json))!;
        Assert.Equal("adm-2", first.DeviceId);
        Assert.True(first.Secret.Length >= 40);

        using var info = await SendAsync(HttpMethod.Get, "/admin/v1/devices/adm-2/credential", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.OK, info.StatusCode);
        Assert.DoesNotContain(first.Secret, await info.Content.ReadAsStringAsync());

        using var dup = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-2/credential", TestNode.OperateToken);
        Assert.Equal(HttpStatusCode.Conflict, dup.StatusCode);
        Assert.Equal(HttpStatusCode.OK, await CheckInStatus("adm-2", first.Secret));

        using var rotated = await SendAsync(HttpMethod.Post, "/admin/v1/devices/adm-2/credential", TestNode.OperateToken, JsonContent.Create(new ProvisionRequest(true)));
        Assert.Equal(HttpStatusCode.Created, rotated.StatusCode);
        var second = (await rotated.Content.ReadFromJsonAsync<ProvisionResponse>(HttpProblems.Json))!;
        Assert.NotEqual(first.Secret, second.Secret);
        Assert.Equal(HttpStatusCode.Unauthorized, await CheckInStatus("adm-2", first.Secret));
        Assert.Equal(HttpStatusCode.OK, await CheckInStatus("adm-2", second.Secret));

        // The database holds no secret in clear.
        var db = await File.ReadAllBytesAsync(Path.Combine(Node.Root, "data", "orchestrator.db"));
        Assert.Equal(-1, System.Text.Encoding.ASCII.GetString(db).IndexOf(second.Secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Invalid_device_id_is_400()
    {
        using var res = await SendAsync(HttpMethod.Post, "/admin/v1/devices/-bad%20id/credential", TestNode.OperateToken);
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Equal("invalid_device_id", (await res.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
    }

    private async Task<HttpStatusCode> CheckInStatus(string deviceId, string secret)
    {
        Node.Devices.Assigned.TryAdd("acme", ("1.0.0", 1, "digest-1"));
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/check-in") { Content = JsonContent.Create(new CheckInRequest("acme", 1, "digest-1", null, null)) };
        DeviceSigning.SignAs(req, deviceId, secret);
        using var res = await Node.Http.SendAsync(req);
        return res.StatusCode;
    }
}

/// <summary>Chunk upload through the admin API into the sharded store (dedup, id check, scope).</summary>
public sealed class ChunkUploadTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task Upload_verifies_the_id_deduplicates_and_needs_operate()
    {
        var node = fixture.Node;
        var data = new byte[150_000]; // larger than this fixture's 64 KiB device body limit
        new Random(5).NextBytes(data);
        var id = Orchestrator.ChunkStore.Codec.ChunkId.Of(data).Hex;
        async Task<HttpResponseMessage> Put(string chunkId, byte[] body, string token)
        {
            using var req = new HttpRequestMessage(HttpMethod.Put, $"/admin/v1/chunks/{chunkId}") { Content = new ByteArrayContent(body) };
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await node.Http.SendAsync(req);
        }
        // Small body: the refusal comes before the body is read.
        using (var ro = await Put(id, [1, 2, 3], TestNode.ReadToken)) Assert.Equal(HttpStatusCode.Forbidden, ro.StatusCode);
        using (var wrong = await Put(new string('a', 64), data, TestNode.OperateToken))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
            Assert.False(File.Exists(Path.Combine(node.StoreRoot, "chunks", "aa", new string('a', 64))));
        }
        using (var created = await Put(id, data, TestNode.OperateToken)) Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using (var again = await Put(id, data, TestNode.OperateToken)) Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(data, await File.ReadAllBytesAsync(Path.Combine(node.StoreRoot, "chunks", id[..2], id)));
    }
}
