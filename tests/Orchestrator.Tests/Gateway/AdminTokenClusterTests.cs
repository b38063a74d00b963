using System.Net.Http.Headers;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// Admin tokens live in the node database: on PostgreSQL, a token created or revoked through one node of a cluster
/// is honoured by the other (within the token refresh interval), configured tokens included.
/// </summary>
public sealed class AdminTokenClusterTests
{
    private static async Task<HttpResponseMessage> SendAsync(TestNode node, HttpMethod method, string path, string token, object? body = null)
    {
        using var req = new HttpRequestMessage(method, path);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) req.Content = JsonContent.Create(body, body.GetType(), options: HttpProblems.Json);
        return await node.Http.SendAsync(req);
    }

    // Polls for an answer: the other node reloads its token snapshot every AdminTokens.RefreshInterval (5 s).
    private static async Task<(HttpStatusCode Status, string? Error)> EventuallyAsync(TestNode node, string token, HttpStatusCode want)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            using var res = await SendAsync(node, HttpMethod.Get, "/admin/v1/rollouts", token);
            var error = res.IsSuccessStatusCode ? null : (await res.Content.ReadFromJsonAsync<ProblemResponse>(HttpProblems.Json))?.Error;
            if (res.StatusCode == want || DateTime.UtcNow > deadline) return (res.StatusCode, error);
            await Task.Delay(250);
        }
    }

    [PostgresFact]
    public async Task Tokens_created_and_revoked_through_one_node_apply_on_the_other()
    {
        Assert.False(string.IsNullOrEmpty(PostgresFactAttribute.ConnectionString), "ORCH_REQUIRE_POSTGRES=1 but ORCH_TEST_POSTGRES is unset.");
        // The database outlives the test: names and the extra configured token are unique to this run.
        var run = Guid.NewGuid().ToString("N")[..10];
        var extraToken = "pg-extra-token-" + Guid.NewGuid().ToString("N");
        var database = new Dictionary<string, string?>
        {
            ["Database:Provider"] = "postgresql",
            ["Database:ConnectionString"] = PostgresFactAttribute.ConnectionString,
            ["Admin:Tokens:2:Name"] = "extra-" + run,
            ["Admin:Tokens:2:Sha256"] = TestNode.Sha256Hex(extraToken),
            ["Admin:Tokens:2:Scopes:0"] = "read",
        };
        var port = LoopbackPort.Free();
        await using var a = await TestNode.StartAsync(new Dictionary<string, string?>(database)
        {
            ["Node:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, realDevices: true);
        await using var b = await TestNode.StartAsync(new Dictionary<string, string?>(database)
        {
            ["Node:Roles:0"] = "gateway",
            ["Node:SeedNodes:0"] = $"akka.tcp://orchestrator@127.0.0.1:{port}",
        }, realDevices: true);

        using var created = await SendAsync(a, HttpMethod.Post, "/admin/v1/tokens", TestNode.OperateToken,
            new AdminTokenCreateRequest("ci-" + run, ["read"], 3600));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var token = (await created.Content.ReadFromJsonAsync<AdminTokenCreated>(HttpProblems.Json))!.Token;
        Assert.Equal((HttpStatusCode.OK, null), await EventuallyAsync(b, token, HttpStatusCode.OK));

        using (var revoked = await SendAsync(b, HttpMethod.Delete, "/admin/v1/tokens/ci-" + run, TestNode.OperateToken))
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.Equal((HttpStatusCode.Unauthorized, "token_revoked"), await EventuallyAsync(a, token, HttpStatusCode.Unauthorized));

        Assert.Equal((HttpStatusCode.OK, null), await EventuallyAsync(a, extraToken, HttpStatusCode.OK));
        using (var revoked = await SendAsync(b, HttpMethod.Delete, "/admin/v1/tokens/extra-" + run, TestNode.OperateToken))
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.Equal((HttpStatusCode.Unauthorized, "token_revoked"), await EventuallyAsync(a, extraToken, HttpStatusCode.Unauthorized));
    }
}
