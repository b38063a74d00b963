using System.Net.Http.Headers;
using System.Text;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>Check-in and reports end to end through Kestrel, validation at the edge, size limits.</summary>
public sealed class CheckInTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    private async Task<HttpResponseMessage> SendAsync(string deviceId, string secret, string route, HttpContent content)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/{route}") { Content = content };
        DeviceSigning.SignAs(req, deviceId, secret);
        return await Node.Http.SendAsync(req);
    }

    [Fact]
    public async Task Upgrade_and_repair_carry_a_grant_none_does_not()
    {
        var secret = await Node.ProvisionAsync("ci-1");
        Node.Devices.Assigned["widget"] = ("2.0.0", 7, "digest-7");

        using var up = await SendAsync("ci-1", secret, "check-in", JsonContent.Create(new CheckInRequest("widget", 3, "digest-3", null, "1.0")));
        Assert.Equal(HttpStatusCode.OK, up.StatusCode);
        var upgrade = await up.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json);
        Assert.Equal(UpdateAction.Upgrade, upgrade!.Action);
        Assert.Equal(7, upgrade.TargetVersionId);
        Assert.Equal("manifests/widget/2.0.0.json", upgrade.ManifestPath);
        Assert.NotNull(upgrade.Grant);
        Assert.True(upgrade.Grant!.MaxBytes > 0 && upgrade.Grant.BytesPerSecond > 0 && upgrade.Grant.ExpiresUtc > DateTimeOffset.UtcNow);

        using var rep = await SendAsync("ci-1", secret, "check-in", JsonContent.Create(new CheckInRequest("widget", 7, "tampered", [new("bin/app", new string('a', 64))], "1.0")));
        var repair = await rep.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json);
        Assert.Equal(UpdateAction.Repair, repair!.Action);
        Assert.Equal(["bin/app"], repair.RepairFiles);
        Assert.NotNull(repair.Grant);

        using var none = await SendAsync("ci-1", secret, "check-in", JsonContent.Create(new CheckInRequest("widget", 7, "digest-7", null, "1.0")));
        var nothing = await none.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json);
        Assert.Equal(UpdateAction.None, nothing!.Action);
        Assert.Null(nothing.Grant);

        // The wire format is the documented one: camelCase, action as a string.
        using var raw = await SendAsync("ci-1", secret, "check-in", JsonContent.Create(new CheckInRequest("widget", 3, "digest-3", null, "1.0")));
        var json = await raw.Content.ReadAsStringAsync();
        Assert.Contains("\"action\":\"Upgrade\"", json);
        Assert.Contains("\"grant\":{\"maxBytes\":", json);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("0123456789abcdef0123456789abcdef", null)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", null)]
    [InlineData("0123456789abcdef0123456789abcde", "invalid_nonce")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", "invalid_nonce")]
    [InlineData("0123456789ABCDEF0123456789abcdef", "invalid_nonce")]
    [InlineData("0123456789abcdef0123456789abcdeg", "invalid_nonce")]
    [InlineData("0123456789abcdef-0123456789abcde", "invalid_nonce")]
    public void The_nonce_rule_accepts_32_to_64_lower_case_hex_characters_only(string? nonce, string? error)
    {
        Assert.Equal(error, DeviceRequestValidation.Validate(new CheckInRequest("acme", 0, "d", null, null, nonce), 10)?.Code);
    }

    [Fact]
    public async Task Invalid_bodies_are_400_and_never_reach_the_device_actor()
    {
        var secret = await Node.ProvisionAsync("ci-bad");
        var cases = new (HttpContent Content, string Error)[]
        {
            (JsonContent.Create(new CheckInRequest("../etc", 0, "d", null, null)), "invalid_product"),
            (JsonContent.Create(new CheckInRequest("Acme", 0, "d", null, null)), "invalid_product"),
            (JsonContent.Create(new CheckInRequest("acme", -1, "d", null, null)), "invalid_version_id"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", [new("../x", new string('a', 64))], null)), "invalid_file_path"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", [new("x", "nothex")], null)), "invalid_file_hash"),
            (new StringContent("{not json", Encoding.UTF8, "application/json"), "invalid_json"),
            // The nonce: 32-64 lower-case hex characters, each rule at its edge.
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('a', 31))), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('a', 65))), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('a', 31) + "A")), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('0', 31) + "g")), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, "9" + new string('f', 30) + " ")), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('a', 40) + "\u00e9")), "invalid_nonce"),
            (JsonContent.Create(new CheckInRequest("acme", 0, "d", null, null, new string('a', 16) + "/" + new string('a', 16))), "invalid_nonce"),
        };
        foreach (var (content, error) in cases)
        {
            using var res = await SendAsync("ci-bad", secret, "check-in", content);
            Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
            Assert.Equal(error, (await res.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
        }
        using var text = await SendAsync("ci-bad", secret, "check-in", new StringContent("{}", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
        using var failure = await SendAsync("ci-bad", secret, "failure", JsonContent.Create(new FailureReport(3, "dance", "x", 1)));
        Assert.Equal(HttpStatusCode.BadRequest, failure.StatusCode);
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId == "ci-bad");
    }

    [Fact]
    public async Task Unknown_product_rejection_from_the_device_side_maps_to_its_status()
    {
        var secret = await Node.ProvisionAsync("ci-unknown");
        using var res = await SendAsync("ci-unknown", secret, "check-in", JsonContent.Create(new CheckInRequest("no-such-product", 0, "d", null, null)));
        Assert.Equal(HttpStatusCode.NotFound, res.StatusCode);
        Assert.Equal("unknown_product", (await res.Content.ReadFromJsonAsync<ProblemResponse>())!.Error);
    }

    [Fact]
    public async Task Reports_are_forwarded_and_answered_204()
    {
        var secret = await Node.ProvisionAsync("ci-rep");
        using (var p = await SendAsync("ci-rep", secret, "progress", JsonContent.Create(new ProgressReport(7, 10, 100, 1, 10)))) Assert.Equal(HttpStatusCode.NoContent, p.StatusCode);
        using (var f = await SendAsync("ci-rep", secret, "failure", JsonContent.Create(new FailureReport(7, "verify", "hash mismatch", 2)))) Assert.Equal(HttpStatusCode.NoContent, f.StatusCode);
        using (var c = await SendAsync("ci-rep", secret, "completion", JsonContent.Create(new CompletionReport(7, "digest-7")))) Assert.Equal(HttpStatusCode.NoContent, c.StatusCode);
        var mine = Node.Devices.Calls.Where(c => c.DeviceId == "ci-rep").Select(c => c.Request).ToList();
        Assert.Equal(new object[] { new ProgressReport(7, 10, 100, 1, 10), new FailureReport(7, "verify", "hash mismatch", 2), new CompletionReport(7, "digest-7") }, mine);
    }

    [Fact]
    public async Task Bodies_over_the_limit_are_413_declared_or_streamed()
    {
        var secret = await Node.ProvisionAsync("ci-big");
        var files = Enumerable.Range(0, 2000).Select(i => new InventoryEntry($"f/{i:D6}.bin", new string('b', 64))).ToList();
        // Declared length: with Expect: 100-continue the server answers 413 before the client sends the body, so the
        // answer cannot race the upload.
        var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new CheckInRequest("acme", 0, "d", files, null), HttpProblems.Json);
        using var declaredReq = new HttpRequestMessage(HttpMethod.Post, "/v1/devices/ci-big/check-in") { Content = new ByteArrayContent(body) };
        declaredReq.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        DeviceSigning.SignAs(declaredReq, "ci-big", secret);
        declaredReq.Headers.ExpectContinue = true;
        using var declared = await Node.Http.SendAsync(declaredReq);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);

        // Chunked transfer (no Content-Length): the limit is enforced while reading.
        var json = System.Text.Json.JsonSerializer.Serialize(new CheckInRequest("acme", 0, "d", files, null), HttpProblems.Json);
        var streamed = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        streamed.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/devices/ci-big/check-in") { Content = streamed };
        DeviceSigning.SignAs(req, "ci-big", secret);
        req.Headers.TransferEncodingChunked = true;
        // Kestrel answers 413 and closes the connection while the client may still be writing the rest of the body;
        // the client then sees either the 413 or a reset, depending on timing. Both are the server refusing the
        // body; what must hold either way is that nothing reached the device actor.
        try
        {
            using var res = await Node.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, res.StatusCode);
        }
        catch (HttpRequestException e) when (e.InnerException is IOException)
        {
        }
        Assert.DoesNotContain(Node.Devices.Calls, c => c.DeviceId == "ci-big");
    }
}
