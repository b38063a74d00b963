using System.Net.Http.Headers;
using System.Text.Json;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>The dashboard's page and data route: no fleet data without a token, the right figures with one.</summary>
public sealed class DashboardDataTests(DashboardFleet fleet) : IClassFixture<DashboardFleet>
{
    private TestNode Node => fleet.Node;

    private async Task<HttpResponseMessage> GetAsync(string path, string? token)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Node.Http.SendAsync(req);
    }

    [Fact]
    public async Task Page_and_assets_carry_no_fleet_data_and_a_strict_csp()
    {
        foreach (var path in new[] { "/", "/dashboard/app.js", "/dashboard/app.css" })
        {
            using var res = await GetAsync(path, null);
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            var body = await res.Content.ReadAsStringAsync();
            Assert.DoesNotContain("dash-", body);
            Assert.DoesNotContain("akka.tcp://", body);
            Assert.Contains("script-src 'self'", res.Headers.GetValues("Content-Security-Policy").Single());
        }
        using var page = await GetAsync("/", null);
        Assert.Contains("/dashboard/app.js", await page.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Data_route_needs_a_read_token()
    {
        using var none = await GetAsync("/admin/v1/dashboard", null);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var wrong = await GetAsync("/admin/v1/dashboard", "nope");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.DoesNotContain("dash-", await wrong.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Data_route_gives_state_counts_versions_failure_reasons_and_members()
    {
        using var res = await GetAsync("/admin/v1/dashboard", TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("no-store", res.Headers.CacheControl!.ToString());
        var d = JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
        var f = d.GetProperty("fleet");
        Assert.Equal(4, f.GetProperty("totalDevices").GetInt32());
        Assert.Equal(2, f.GetProperty("byStatus").GetProperty("Idle").GetInt32());
        Assert.Equal(1, f.GetProperty("byStatus").GetProperty("UpgradeAssigned").GetInt32());
        Assert.Equal(1, f.GetProperty("byStatus").GetProperty("Failed").GetInt32());
        Assert.Equal(0, f.GetProperty("byStatus").GetProperty("Downloading").GetInt32());
        var versions = f.GetProperty("versions").EnumerateArray()
            .Select(v => (v.GetProperty("version").GetString(), v.GetProperty("devices").GetInt32())).ToList();
        Assert.Equal([("1.0.0", 3), ("2.0.0", 1)], versions);
        Assert.Equal(1, f.GetProperty("failureReasons").GetProperty(DashboardFleet.FailureReason).GetInt32());
        var failure = Assert.Single(f.GetProperty("recentFailures").EnumerateArray());
        Assert.Equal("dash-broken", failure.GetProperty("deviceId").GetString());
        Assert.Equal("Verify", failure.GetProperty("stage").GetString());
        Assert.Equal("Up", d.GetProperty("cluster").GetProperty("members")[0].GetProperty("status").GetString());
        Assert.True(d.GetProperty("rolloutsAvailable").GetBoolean());
        var rollout = Assert.Single(d.GetProperty("rollouts").EnumerateArray());
        Assert.Equal(DashboardFleet.RolloutId, rollout.GetProperty("rolloutId").GetString());
        Assert.Equal("Running", rollout.GetProperty("status").GetString());
        var waves = rollout.GetProperty("waves").EnumerateArray().ToList();
        Assert.Equal(2, waves.Count);
        Assert.Equal(1, waves[0].GetProperty("total").GetInt32());
        Assert.Equal(1, waves[0].GetProperty("inProgress").GetInt32());
        Assert.Equal(1, waves[1].GetProperty("pending").GetInt32());
    }
}
