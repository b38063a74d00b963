using System.Text;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Faults;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Protocol v2 against an on-path attacker: the real orch-agent process talks to a real node through a recording
/// proxy; the captured requests carry no secret, and replaying them byte for byte changes nothing on the node.
/// </summary>
public sealed class AgentReplayTests(ITestOutputHelper output)
{
    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task A_captured_failure_report_replayed_four_times_is_refused_and_counts_no_attempt()
    {
        // A short announced backoff: the restarted agent at the end must not be deferred (429 retry_later) before it fails again.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:RetryBase"] = "00:00:00.100", ["Devices:RetryCap"] = "00:00:00.500",
        });
        await using var proxy = new RecordingProxy(new Uri(node.BaseUrl).Port);
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        const string id = "dev-replay";
        var secret = await node.ProvisionAsync(id);
        using var d = new TestDevice(proxy.BaseUrl, credential: secret, deviceId: id, contentKey: store.ContentKey.ToBytes(),
            trustRoot: store.SigningKey.PublicKey.ToBytes(), download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });

        // A real install through the proxy: check-in, signed store requests, progress and completion.
        await node.AssignAsync(id, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d, 0);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        // A target whose manifest the store does not have: the agent fails once, reports it and gives up (1 attempt).
        await node.AssignAsync(id, "acme", "9.0", 9, "manifests/acme/9.0.json");
        await Run(d, 1);
        var failed = await node.StateAsync(id);
        Assert.Equal((DeviceStatus.Failed, 1), (failed.Status, failed.FailedAttempts));

        var reports = proxy.Requests($"POST /v1/devices/{id}/failure ");
        var report = Assert.Single(reports);
        for (var i = 0; i < 4; i++)
        {
            var (status, body) = await proxy.ReplayAsync(report);
            Assert.Equal(401, status);
            Assert.Contains("\"error\":\"replayed_sequence\"", body);
        }
        var checkIn = proxy.Requests($"POST /v1/devices/{id}/check-in ").Last();
        var (checkInStatus, checkInBody) = await proxy.ReplayAsync(checkIn);
        Assert.Equal(401, checkInStatus);
        Assert.Contains("\"error\":\"replayed_sequence\"", checkInBody);

        var after = await node.StateAsync(id);
        Assert.Equal(failed.FailedAttempts, after.FailedAttempts);
        Assert.Equal(failed.EventCount, after.EventCount); // nothing journaled
        Assert.Equal(failed.LastFailure, after.LastFailure);
        Assert.Equal(DeviceStatus.Failed, after.Status);

        // The secret never travelled: not as such, not in a Basic header; every device request was signed.
        var captured = proxy.Captured;
        Assert.DoesNotContain(secret, captured);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{id}:{secret}")), captured);
        Assert.DoesNotContain("Authorization: Basic", captured);
        // A request line may follow the previous request's body on the same "line", so count occurrences, not lines.
        var deviceRequests = System.Text.RegularExpressions.Regex.Count(captured, @"(GET|HEAD|POST) /v1/(devices|store)/[^ ]* HTTP/1\.1\r\n");
        var signed = captured.Split("\r\n").Count(l => l.StartsWith($"Authorization: Orch-HMAC-SHA256 device={id}, seq=", StringComparison.Ordinal));
        Assert.True(deviceRequests >= 5, $"only {deviceRequests} device requests captured");
        Assert.Equal(deviceRequests, signed);

        // The agent itself, restarted, is not mistaken for a replay: its next failure counts. It restarts after the
        // announced backoff (at most RetryCap): a native agent starts within milliseconds, and a check-in inside the
        // backoff is deferred (429 retry_later, pacing) before it could fail.
        await Task.Delay(TimeSpan.FromMilliseconds(600));
        await Run(d, 1);
        Assert.Equal(2, (await node.StateAsync(id)).FailedAttempts);
    }

    [Fact]
    public async Task The_documented_sign_request_helper_signs_a_check_in_the_node_accepts_once()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        store.Publish("1.0", Releases.V1());
        const string id = "dev-curl";
        var secret = await node.ProvisionAsync(id);
        using var dir = new TempDir();
        var secretFile = Path.Combine(dir.Path, "dev.secret");
        await File.WriteAllTextAsync(secretFile, secret);
        var bodyFile = Path.Combine(dir.Path, "checkin.json");
        await File.WriteAllTextAsync(bodyFile, """{"product":"acme","installedVersionId":0,"inventoryDigest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","files":[]}""");
        var url = $"{node.BaseUrl}v1/devices/{id}/check-in";
        var signed = await AgentProcess.RunAsync(["sign-request", "--device", id, "--secret-file", secretFile, "--method", "POST", "--url", url, "--body-file", bodyFile]);
        Assert.True(signed.ExitCode == 0, signed.Error);
        var header = signed.Output.Trim();
        Assert.StartsWith($"Orch-HMAC-SHA256 device={id}, seq=", header);
        Assert.DoesNotContain(secret, signed.Output + signed.Error);

        async Task<HttpResponseMessage> SendAsync()
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(await File.ReadAllBytesAsync(bodyFile)) };
            req.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            req.Headers.TryAddWithoutValidation("Authorization", header);
            return await node.Http.SendAsync(req);
        }
        using (var first = await SendAsync())
            Assert.True(first.IsSuccessStatusCode, await first.Content.ReadAsStringAsync());
        Assert.Equal(DeviceStatus.Idle, (await node.StateAsync(id)).Status);
        using var again = await SendAsync();
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, again.StatusCode);
        Assert.Contains("replayed_sequence", await again.Content.ReadAsStringAsync());
    }
}
