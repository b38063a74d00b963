using Orchestrator.TestSupport;

namespace Orchestrator.Cli.Tests;

/// <summary>
/// <c>orch token create|list|revoke</c> against a real node of its own (revoking configured tokens would disturb the
/// shared live node): tokens work with their scopes, expire, and stop working when revoked, each refusal with its code.
/// </summary>
public sealed class TokenCommandTests : IAsyncLifetime
{
    private const string OperateToken = "token-test-operate-0123456789abcdef0123456789";
    private const string ReadToken = "token-test-read-0123456789abcdef0123456789abc";
    private readonly CliHarness _cli = new();
    private RunningNode _node = null!;

    public async Task InitializeAsync() =>
        _node = await RunningNode.StartAsync(RunningNode.Settings(Path.Combine(_cli.Root, "node-data"), Path.Combine(_cli.Root, "node-store"), OperateToken, ReadToken));

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _cli.Dispose();
    }

    private Task<CliHarness.Run> Orch(string token, params string[] args) =>
        _cli.Orch([.. args, "--server", _node.BaseAddress.ToString(), "--token", token]);

    [Fact]
    public async Task A_created_token_works_with_its_scopes_is_listed_without_its_secret_and_stops_working_when_revoked()
    {
        var created = await Orch(OperateToken, "token", "create", "--name", "ci-reader", "--scopes", "read", "--expires", "30d", "--json");
        Assert.True(created.ExitCode == 0, created.Error);
        var token = created.Json.GetProperty("token").GetString()!;
        var expires = created.Json.GetProperty("expiresUtc").GetDateTimeOffset();
        Assert.InRange(expires, DateTimeOffset.UtcNow.AddDays(30).AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(30).AddMinutes(5));

        Assert.Equal(0, (await Orch(token, "device", "list")).ExitCode);
        var operate = await Orch(token, "device", "provision", "tok-dev", "--json");
        Assert.Equal(6, operate.ExitCode);
        Assert.Equal("scope_missing", operate.Json.GetProperty("error").GetString());

        var list = await Orch(OperateToken, "token", "list", "--json");
        Assert.Equal(0, list.ExitCode);
        Assert.DoesNotContain(token, list.Out);
        Assert.DoesNotContain(RunningNode.Sha256Hex(token), list.Out);
        var rows = list.Json.GetProperty("tokens").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        Assert.Equal(["ci-reader", "operator", "viewer"], rows.Keys.Order());
        Assert.Equal(("created", "active"), (rows["ci-reader"].GetProperty("source").GetString(), rows["ci-reader"].GetProperty("status").GetString()));
        Assert.Equal(("configured", "active"), (rows["viewer"].GetProperty("source").GetString(), rows["viewer"].GetProperty("status").GetString()));
        var table = await Orch(OperateToken, "token", "list");
        Assert.Contains("ci-reader", table.Out);
        Assert.DoesNotContain(token, table.Out);

        var revoke = await Orch(OperateToken, "token", "revoke", "ci-reader");
        Assert.True(revoke.ExitCode == 0, revoke.Error);
        var refused = await Orch(token, "device", "list", "--json");
        Assert.Equal(6, refused.ExitCode);
        Assert.Equal("token_revoked", refused.Json.GetProperty("error").GetString());
        Assert.Equal("revoked", (await Orch(OperateToken, "token", "list", "--json")).Json.GetProperty("tokens").EnumerateArray()
            .Single(t => t.GetProperty("name").GetString() == "ci-reader").GetProperty("status").GetString());

        // Names are never reused, so a revoked token cannot come back under its old name; a second revoke is a conflict.
        Assert.Equal(9, (await Orch(OperateToken, "token", "create", "--name", "ci-reader", "--scopes", "read")).ExitCode);
        Assert.Equal(9, (await Orch(OperateToken, "token", "revoke", "ci-reader")).ExitCode);
        Assert.Equal(7, (await Orch(OperateToken, "token", "revoke", "nobody")).ExitCode);
    }

    [Fact]
    public async Task Bad_input_is_refused_before_anything_is_created()
    {
        var badExpiry = await Orch(OperateToken, "token", "create", "--name", "x1", "--scopes", "read", "--expires", "30x");
        Assert.Equal(2, badExpiry.ExitCode);
        Assert.Contains("--expires '30x'", badExpiry.Error);
        var badScope = await Orch(OperateToken, "token", "create", "--name", "x2", "--scopes", "admin");
        Assert.Equal(2, badScope.ExitCode);
        var badName = await Orch(OperateToken, "token", "create", "--name", "../x", "--scopes", "read", "--json");
        Assert.Equal(3, badName.ExitCode);
        Assert.Equal("invalid_token_request", badName.Json.GetProperty("error").GetString());
        var configuredName = await Orch(OperateToken, "token", "create", "--name", "viewer", "--scopes", "read");
        Assert.Equal(9, configuredName.ExitCode);
        var readOnly = await Orch(ReadToken, "token", "create", "--name", "x3", "--scopes", "read", "--json");
        Assert.Equal(6, readOnly.ExitCode);
        Assert.Equal("scope_missing", readOnly.Json.GetProperty("error").GetString());
        var names = (await Orch(OperateToken, "token", "list", "--json")).Json.GetProperty("tokens").EnumerateArray().Select(t => t.GetProperty("name").GetString());
        Assert.Equal(["operator", "viewer"], names.Order());
    }

    [Fact]
    public async Task An_expired_token_is_refused_with_token_expired()
    {
        var created = await Orch(OperateToken, "token", "create", "--name", "short", "--scopes", "read", "--expires", "1s", "--json");
        Assert.True(created.ExitCode == 0, created.Error);
        var token = created.Json.GetProperty("token").GetString()!;
        var expires = created.Json.GetProperty("expiresUtc").GetDateTimeOffset();
        while (DateTimeOffset.UtcNow <= expires.AddMilliseconds(200)) await Task.Delay(100);
        var refused = await Orch(token, "device", "list", "--json");
        Assert.Equal(6, refused.ExitCode);
        Assert.Equal("token_expired", refused.Json.GetProperty("error").GetString());
        Assert.Equal("expired", (await Orch(OperateToken, "token", "list", "--json")).Json.GetProperty("tokens").EnumerateArray()
            .Single(t => t.GetProperty("name").GetString() == "short").GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_configured_token_works_until_it_is_revoked_by_name()
    {
        Assert.Equal(0, (await Orch(ReadToken, "device", "list")).ExitCode);
        var revoke = await Orch(OperateToken, "token", "revoke", "viewer", "--json");
        Assert.True(revoke.ExitCode == 0, revoke.Error);
        Assert.Equal("revoked", revoke.Json.GetProperty("status").GetString());
        var refused = await Orch(ReadToken, "device", "list", "--json");
        Assert.Equal(6, refused.ExitCode);
        Assert.Equal("token_revoked", refused.Json.GetProperty("error").GetString());
        // The revocation is in the node database: it holds after the node restarts with the same configuration.
        var settings = RunningNode.Settings(Path.Combine(_cli.Root, "node-data"), Path.Combine(_cli.Root, "node-store"), OperateToken, ReadToken);
        await _node.DisposeAsync();
        _node = await RunningNode.StartAsync(settings);
        Assert.Equal("token_revoked", (await Orch(ReadToken, "device", "list", "--json")).Json.GetProperty("error").GetString());
        Assert.Equal(0, (await Orch(OperateToken, "device", "list")).ExitCode);
    }
}
