using System.Net.Http.Headers;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>Per-device credentials through the real HTTP stack: who may call what, and that refusals serve nothing.</summary>
public sealed class DeviceAuthTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    private static CheckInRequest CheckIn(string product = "acme") => new(product, 0, "digest-0", null, "1.0.0");

    private async Task<HttpResponseMessage> PostCheckInAsync(string pathDevice, AuthenticationHeaderValue? auth) =>
        await PostCheckInAsync(pathDevice, null, null, auth);

    private async Task<HttpResponseMessage> PostCheckInAsync(string pathDevice, string? signAs, string? secret, AuthenticationHeaderValue? raw = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{pathDevice}/check-in") { Content = JsonContent.Create(CheckIn()) };
        req.Headers.Authorization = raw;
        if (signAs is not null) DeviceSigning.SignAs(req, signAs, secret!);
        return await Node.Http.SendAsync(req);
    }

    private static async Task<string?> ErrorOf(HttpResponseMessage res) => (await res.Content.ReadFromJsonAsync<ProblemResponse>())?.Error;

    [Fact]
    public async Task Missing_credential_is_401_with_challenge_and_reaches_no_device_actor()
    {
        var before = Node.Devices.Calls.Count;
        using var res = await PostCheckInAsync("auth-missing", null);
        Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
        Assert.Contains("Orch-HMAC-SHA256", res.Headers.WwwAuthenticate.ToString());
        var problem = await res.Content.ReadFromJsonAsync<ProblemResponse>();
        Assert.Equal("credential_missing", problem!.Error);
        Assert.Equal(before, Node.Devices.Calls.Count);
    }

    [Fact]
    public async Task Wrong_secret_unknown_device_and_malformed_header_are_401()
    {
        var secret = await Node.ProvisionAsync("auth-wrong");
        using var wrong = await PostCheckInAsync("auth-wrong", "auth-wrong", "not-the-secret");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("credential_invalid", await ErrorOf(wrong));
        using var unknown = await PostCheckInAsync("auth-nobody", "auth-nobody", "whatever");
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal("credential_invalid", await ErrorOf(unknown));
        using var malformed = await PostCheckInAsync("auth-wrong", new AuthenticationHeaderValue("Orch-HMAC-SHA256", "device=auth-wrong, seq=x"));
        Assert.Equal(HttpStatusCode.Unauthorized, malformed.StatusCode);
        Assert.Equal("credential_malformed", await ErrorOf(malformed));
        using var bearer = await PostCheckInAsync("auth-wrong", new AuthenticationHeaderValue("Bearer", "abc"));
        Assert.Equal(HttpStatusCode.Unauthorized, bearer.StatusCode);
        // Protocol v1's Basic credential (the secret in the header) is refused even when the secret is right.
        using var basic = await PostCheckInAsync("auth-wrong", new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("auth-wrong:" + secret))));
        Assert.Equal(HttpStatusCode.Unauthorized, basic.StatusCode);
        Assert.Equal("credential_malformed", await ErrorOf(basic));
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId is "auth-wrong" or "auth-nobody");
    }

    [Fact]
    public async Task Stale_or_future_timestamps_are_401_timestamp_skew_and_reach_no_device_actor()
    {
        var secret = await Node.ProvisionAsync("auth-skew");
        Node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var body = JsonContent.Create(CheckIn());
        var bytes = await body.ReadAsByteArrayAsync();
        const string path = "/v1/devices/auth-skew/check-in";
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        foreach (var ts in new[] { now - 301 - 60, now + 301 + 60 })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(bytes) };
            req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            req.Headers.TryAddWithoutValidation("Authorization", DeviceSigning.Header("auth-skew", secret, "POST", path, bytes, DeviceSigning.NextSequence(), ts));
            using var res = await Node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
            Assert.Equal("timestamp_skew", await ErrorOf(res));
        }
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId == "auth-skew");
        // The same request signed now is accepted: the refusal was about the timestamp alone.
        using var ok = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(bytes) };
        ok.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        ok.Headers.TryAddWithoutValidation("Authorization", DeviceSigning.Header("auth-skew", secret, "POST", path, bytes, DeviceSigning.NextSequence(), now));
        using var accepted = await Node.Http.SendAsync(ok);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task A_tampered_body_or_path_is_401_credential_invalid_and_reaches_no_device_actor()
    {
        var secret = await Node.ProvisionAsync("auth-tamper");
        var signedBody = "{\"targetVersionId\":2,\"stage\":\"download\",\"reason\":\"x\",\"attempt\":1}"u8.ToArray();
        var tamperedBody = "{\"targetVersionId\":2,\"stage\":\"download\",\"reason\":\"y\",\"attempt\":1}"u8.ToArray();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = DeviceSigning.Header("auth-tamper", secret, "POST", "/v1/devices/auth-tamper/failure", signedBody, DeviceSigning.NextSequence(), now);
        foreach (var (path, body) in new[] { ("/v1/devices/auth-tamper/failure", tamperedBody), ("/v1/devices/auth-tamper/progress", signedBody),
                     ("/v1/devices/auth-tamper/failure?x=1", signedBody) })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
            req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            req.Headers.TryAddWithoutValidation("Authorization", header);
            using var res = await Node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
            Assert.Equal("credential_invalid", await ErrorOf(res));
        }
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId == "auth-tamper");
    }

    [Fact]
    public async Task Another_devices_credential_is_403_on_every_device_route()
    {
        var secretA = await Node.ProvisionAsync("auth-a");
        await Node.ProvisionAsync("auth-b");
        using var checkIn = await PostCheckInAsync("auth-b", "auth-a", secretA);
        Assert.Equal(HttpStatusCode.Forbidden, checkIn.StatusCode);
        foreach (var (route, body) in new (string, object)[]
                 {
                     ("progress", new ProgressReport(2, 1, 2, 1, 2)),
                     ("failure", new FailureReport(2, "download", "x", 1)),
                     ("completion", new CompletionReport(2, "d")),
                 })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/auth-b/{route}") { Content = JsonContent.Create(body, body.GetType()) };
            DeviceSigning.SignAs(req, "auth-a", secretA);
            using var res = await Node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Forbidden, res.StatusCode);
        }
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId == "auth-b");
    }

    [Fact]
    public async Task Chunk_and_manifest_routes_serve_nothing_without_a_valid_credential()
    {
        var id = Node.WriteChunk("secret chunk bytes"u8.ToArray());
        Directory.CreateDirectory(Path.Combine(Node.StoreRoot, "manifests", "acme"));
        await File.WriteAllTextAsync(Path.Combine(Node.StoreRoot, "manifests", "acme", "1.0.0.json"), "{\"product\":\"acme\"}");
        foreach (var path in new[] { $"/v1/store/chunks/{id[..2]}/{id}", "/v1/store/manifests/acme/1.0.0.json" })
        {
            foreach (var signed in new[] { false, true })
            {
                using var req = new HttpRequestMessage(HttpMethod.Get, path);
                if (signed) DeviceSigning.SignAs(req, "auth-nobody", "x");
                using var res = await Node.Http.SendAsync(req);
                Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
                var body = await res.Content.ReadAsStringAsync();
                Assert.DoesNotContain("secret chunk bytes", body);
                Assert.DoesNotContain("product", body.Replace("\"error\"", ""));
                Assert.Null(res.Headers.ETag);
            }
        }
    }

    [Fact]
    public async Task Revoked_credential_stops_working()
    {
        var secret = await Node.ProvisionAsync("auth-revoked");
        Node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        using (var ok = await PostCheckInAsync("auth-revoked", "auth-revoked", secret))
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using (var del = new HttpRequestMessage(HttpMethod.Delete, "/admin/v1/devices/auth-revoked/credential"))
        {
            del.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.OperateToken);
            using var res = await Node.Http.SendAsync(del);
            Assert.Equal(HttpStatusCode.NoContent, res.StatusCode);
        }
        using var after = await PostCheckInAsync("auth-revoked", "auth-revoked", secret);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
    }
}

/// <summary>One node shared by the tests of a class (starting a node takes a second or two).</summary>
public sealed class NodeFixture : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;
    public async Task InitializeAsync() => Node = await TestNode.StartAsync(new Dictionary<string, string?> { ["Gateway:MaxRequestBodyBytes"] = "65536" });
    public async Task DisposeAsync() => await Node.DisposeAsync();

    private readonly Dictionary<string, Task<string>> _secrets = new();

    /// <summary>Provisions the device once per fixture and returns its secret.</summary>
    public Task<string> SecretForAsync(string deviceId)
    {
        lock (_secrets)
        {
            if (!_secrets.TryGetValue(deviceId, out var t)) _secrets[deviceId] = t = Node.ProvisionAsync(deviceId);
            return t;
        }
    }
}
