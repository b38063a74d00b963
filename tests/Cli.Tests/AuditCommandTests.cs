using Orchestrator.Cli.Tests.Support;

namespace Orchestrator.Cli.Tests;

/// <summary>
/// <c>orch audit list</c> against a real node: changing requests are recorded under the name of the token that made
/// them (never a name the caller typed), with route, target, reason and status, refusals included; reads are not.
/// </summary>
public sealed class AuditCommandTests(LiveNode node) : IClassFixture<LiveNode>
{
    [Fact]
    public async Task Changes_are_recorded_under_the_token_name_with_target_and_reason_and_can_be_filtered()
    {
        var created = await node.Orch("token", "create", "--name", "alice", "--scopes", "read,operate", "--json");
        Assert.True(created.ExitCode == 0, created.Error);
        var alice = created.Json.GetProperty("token").GetString()!;

        var set = await node.Orch("channel", "set", "acme", "audit-canary", "1.0.0", "--reason", "canary for the audit test",
            "--operator", "somebody-else", "--token", alice);
        Assert.True(set.ExitCode == 0, set.Error);
        var refused = await node.Orch("channel", "set", "acme", "audit-canary", "2.0.0", "--reason", "not allowed", "--token", LiveNode.ReadToken);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Equal(0, (await node.Orch("channel", "show", "acme", "audit-canary", "--token", alice)).ExitCode); // a read: not audited

        var list = await node.Orch("audit", "list", "--target", "audit-canary", "--json");
        Assert.True(list.ExitCode == 0, list.Error);
        var entries = list.Json.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(2, entries.Count);
        var denied = entries[0];
        Assert.Equal(("viewer", 403, "not allowed"), (denied.GetProperty("token").GetString(), denied.GetProperty("status").GetInt32(), denied.GetProperty("reason").GetString()));
        var done = entries[1];
        Assert.Equal("alice", done.GetProperty("token").GetString());
        Assert.Equal("POST channels/{product}/{channel}", done.GetProperty("action").GetString());
        Assert.Equal("product=acme, channel=audit-canary", done.GetProperty("target").GetString());
        Assert.Equal("canary for the audit test", done.GetProperty("reason").GetString());
        Assert.Equal(200, done.GetProperty("status").GetInt32());

        // The token creation is there too, filtered by its target-less route only through --since.
        var recent = await node.Orch("audit", "list", "--since", "10m", "--json");
        Assert.True(recent.Json.GetProperty("entries").EnumerateArray().Any(e => e.GetProperty("action").GetString() == "POST tokens"), recent.Out);
        var table = await node.Orch("audit", "list", "--target", "audit-canary");
        Assert.Contains("canary for the audit test", table.Out);
        Assert.Contains("alice", table.Out);
        var future = await node.Orch("audit", "list", "--since", DateTimeOffset.UtcNow.AddHours(1).ToString("O"), "--json");
        Assert.Empty(future.Json.GetProperty("entries").EnumerateArray());

        var bad = await node.Orch("audit", "list", "--since", "yesterday");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--since 'yesterday' is neither a time", bad.Error);
    }
}
