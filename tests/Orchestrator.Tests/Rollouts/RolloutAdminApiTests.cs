using System.Net.Http.Headers;
using System.Text.Json;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Rollouts;

/// <summary>The rollout admin API through the node's real Kestrel, rollout singleton and device actors (SQLite).</summary>
public sealed class RolloutAdminApiTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private PublishResult _v1 = null!;
    private readonly string _tree = Path.Combine(Path.GetTempPath(), "orch-rollout-tree-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Rollouts:Groups:pilot:DeviceIds:0"] = "h-2",
        }, realDevices: true);
        Directory.CreateDirectory(_tree);
        File.WriteAllText(Path.Combine(_tree, "app"), "v1");
        var store = FileSystemStore.Open(_node.StoreRoot, create: true);
        using var key = ReleaseSigningKey.Generate();
        var content = ContentKey.Generate();
        _v1 = new Publisher(store, content, key).Publish(new PublishRequest("acme", "1.0.0", _tree));
        File.WriteAllText(Path.Combine(_tree, "app"), "v2");
        new Publisher(store, content, key).Publish(new PublishRequest("acme", "2.0.0", _tree));
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        try { Directory.Delete(_tree, true); } catch (IOException) { }
    }

    private async Task<(HttpStatusCode Status, string Body)> Send(HttpMethod method, string path, string token, object? body = null)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = JsonContent.Create(body, body.GetType());
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var res = await _node.Http.SendAsync(req);
        return (res.StatusCode, await res.Content.ReadAsStringAsync());
    }

    private static T Read<T>(string body) => JsonSerializer.Deserialize<T>(body, Admin.RolloutEndpoints.Json)!;

    private const long Cap = 300_000;

    private static object Create(string id, string version = "2.0.0", object? selector = null, double errorThreshold = 0.1) => new
    {
        id, product = "acme", version, selector = selector ?? new { deviceIds = new[] { "h-1" }, groups = new[] { "pilot" } },
        waves = new object[] { new { count = 1 }, new { percent = 100 } }, successThreshold = 1.0, errorThreshold, maxConcurrent = 10,
        bandwidthBytesPerSecond = Cap, @operator = "alice",
    };

    private async Task<CheckInResponse> CheckIn(string deviceId, string secret)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{deviceId}/check-in")
        {
            Content = JsonContent.Create(new CheckInRequest("acme", _v1.VersionId, _v1.InventoryDigest, null, "1.0")),
        };
        DeviceSigning.SignAs(req, deviceId, secret);
        using var res = await _node.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        return (await res.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json))!;
    }

    [Fact]
    public async Task Create_show_list_pause_resume_abort_and_bad_requests_through_http()
    {
        var secret = await _node.ProvisionAsync("h-1");
        Assert.Equal(UpdateAction.None, (await CheckIn("h-1", secret)).Action);
        // A rollout to nobody, or to a name nobody registered, would wait forever: refused until h-2 exists.
        await BadRequest(Create("r1"), "selector.deviceIds");
        await BadRequest(Create("r1", selector: new { tags = new[] { "no-such-tag" } }), "selector");
        Assert.Equal(UpdateAction.None, (await CheckIn("h-2", await _node.ProvisionAsync("h-2"))).Action);

        // Read scope cannot create; bad requests are 400 naming the field, and create nothing.
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(HttpMethod.Post, "/admin/v1/rollouts", TestNode.ReadToken, Create("r1"))).Status);
        async Task BadRequest(object body, string fieldPrefix)
        {
            var (status, text) = await Send(HttpMethod.Post, "/admin/v1/rollouts", TestNode.OperateToken, body);
            Assert.True(status == HttpStatusCode.BadRequest, $"{status}: {text}");
            var problem = Read<ProblemResponse>(text);
            Assert.Equal("invalid_rollout", problem.Error);
            Assert.StartsWith(fieldPrefix + ":", problem.Message);
        }
        await BadRequest(Create("r1", version: "9.9.9"), "version");
        await BadRequest(Create("r1", errorThreshold: 2), "errorThreshold");
        await BadRequest(Create("r1", selector: new { tags = Array.Empty<string>() }), "selector");
        await BadRequest(Create("r1", selector: new { groups = new[] { "nope" } }), "selector.groups");
        await BadRequest(new { product = "acme", version = "2.0.0", selector = new { tags = new[] { "x" } }, waves = new[] { new { count = 1, percent = 5 } } }, "waves[0]");
        await BadRequest(new { product = "ghost", version = "1.0.0", selector = new { tags = new[] { "x" } } }, "product");
        var (listStatus, listBody) = await Send(HttpMethod.Get, "/admin/v1/rollouts", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.OK, listStatus);
        Assert.Empty(Read<RolloutList>(listBody).Rollouts);

        var (created, createdBody) = await Send(HttpMethod.Post, "/admin/v1/rollouts", TestNode.OperateToken, Create("r1"));
        Assert.True(created == HttpStatusCode.Created, createdBody);
        var view = Read<RolloutView>(createdBody);
        Assert.Equal(("r1", 2L, "alice"), (view.Spec.RolloutId, view.Spec.Target.VersionId, view.Spec.CreatedBy));
        Assert.Equal([1, 1], view.Waves.Select(w => w.Total)); // h-1 explicitly, h-2 through the configured group

        // The device learns its target at its next check-in.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        CheckInResponse decision;
        while ((decision = await CheckIn("h-1", secret)).Action != UpdateAction.Upgrade && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal((UpdateAction.Upgrade, "2.0.0"), (decision.Action, decision.TargetVersion));
        // The rollout's bandwidth cap travels with the assignment and bounds the device's grant on this gateway.
        Assert.Equal(Cap, view.Spec.BandwidthBytesPerSecond);
        Assert.NotNull(decision.Grant);
        Assert.InRange(decision.Grant.BytesPerSecond, 1, Cap);

        var (showStatus, showBody) = await Send(HttpMethod.Get, "/admin/v1/rollouts/r1", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.OK, showStatus);
        Assert.Equal(1, Read<RolloutView>(showBody).Waves[0].InProgress);
        Assert.Equal(["r1"], Read<RolloutList>((await Send(HttpMethod.Get, "/admin/v1/rollouts", TestNode.ReadToken)).Body).Rollouts.Select(r => r.RolloutId));

        // A second rollout over the same device conflicts.
        var (conflict, conflictBody) = await Send(HttpMethod.Post, "/admin/v1/rollouts", TestNode.OperateToken, Create("r2"));
        Assert.Equal(HttpStatusCode.Conflict, conflict);
        Assert.Equal("conflicting_rollout", Read<ProblemResponse>(conflictBody).Error);

        Assert.Equal(HttpStatusCode.Forbidden, (await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/pause", TestNode.ReadToken)).Status);
        var (paused, pausedBody) = await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/pause", TestNode.OperateToken, new { reason = "looking" });
        Assert.Equal(HttpStatusCode.OK, paused);
        Assert.Equal(RolloutStatus.Paused, Read<RolloutView>(pausedBody).Status);
        Assert.Contains("\"status\":\"Paused\"", pausedBody);
        Assert.Contains("\"pauseReason\":\"looking (operator)\"", pausedBody);
        var (again, againBody) = await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/pause", TestNode.OperateToken);
        Assert.Equal(HttpStatusCode.Conflict, again);
        Assert.Equal("invalid_state", Read<ProblemResponse>(againBody).Error);
        Assert.Equal(RolloutStatus.Running, Read<RolloutView>((await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/resume", TestNode.OperateToken)).Body).Status);

        var (aborted, abortedBody) = await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/abort", TestNode.OperateToken, new { reason = "bad build", @operator = "bob" });
        Assert.Equal(HttpStatusCode.OK, aborted);
        Assert.Equal(RolloutStatus.Aborted, Read<RolloutView>(abortedBody).Status);
        deadline = DateTime.UtcNow.AddSeconds(15);
        while ((decision = await CheckIn("h-1", secret)).Action != UpdateAction.None && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(UpdateAction.None, decision.Action);

        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "/admin/v1/rollouts/nope", TestNode.ReadToken)).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Get, "/admin/v1/rollouts/Not%20An%20Id", TestNode.ReadToken)).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await Send(HttpMethod.Post, "/admin/v1/rollouts/r1/retry-failed", TestNode.OperateToken)).Status);
    }
}
