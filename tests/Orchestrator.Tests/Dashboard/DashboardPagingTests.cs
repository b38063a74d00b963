using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Playwright;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>The dashboard fleet plus eleven finished rollouts (ro-page-01 .. ro-page-11, each created and aborted in turn).</summary>
public sealed class DashboardPagingFleet : DashboardFleet
{
    /// <summary>Finished rollouts added to the fleet's running one.</summary>
    public const int Finished = 11;

    protected override async Task SeedMoreAsync()
    {
        await DeviceAsync("dash-page", "check-in", new CheckInRequest("acme", V1.VersionId, V1.InventoryDigest, null, "1.0"));
        for (var i = 1; i <= Finished; i++)
        {
            var id = $"ro-page-{i:00}";
            // The device is known to the registry only after its check-in is read; the first create waits for that.
            for (var attempt = 0; ; attempt++)
            {
                using var res = await SendAsync(HttpMethod.Post, "/admin/v1/rollouts",
                    new { id, product = "acme", version = "2.0.0", selector = new { deviceIds = new[] { "dash-page" } } });
                if (res.IsSuccessStatusCode) break;
                Assert.True(attempt < 100, $"{id}: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
                await Task.Delay(100);
            }
            using var abort = await SendAsync(HttpMethod.Post, $"/admin/v1/rollouts/{id}/abort", new { reason = "paging fixture" });
            Assert.True(abort.IsSuccessStatusCode, await abort.Content.ReadAsStringAsync());
        }
    }

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object? body = null, string token = TestNode.OperateToken)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = JsonContent.Create(body, body.GetType());
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Node.Http.SendAsync(req);
    }
}

/// <summary>Rollouts beyond one page stay reachable: the data route pages them, the browser turns the pages.</summary>
public sealed class DashboardPagingTests(DashboardPagingFleet fleet) : IClassFixture<DashboardPagingFleet>
{
    private async Task<JsonElement> PageAsync(string query)
    {
        using var res = await fleet.SendAsync(HttpMethod.Get, "/admin/v1/dashboard" + query, token: TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        return JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static string[] Ids(JsonElement page) => [.. page.GetProperty("rollouts").EnumerateArray().Select(r => r.GetProperty("rolloutId").GetString()!)];

    [Fact]
    public async Task The_data_route_pages_rollouts_unfinished_first_then_the_most_recently_changed()
    {
        var first = await PageAsync("");
        Assert.Equal(DashboardPagingFleet.Finished + 1, first.GetProperty("rolloutsTotal").GetInt32());
        Assert.Equal(10, first.GetProperty("rolloutsPageSize").GetInt32());
        var second = await PageAsync("?rolloutPage=1");
        // The running rollout first, then the aborted ones by their last change, newest first, across both pages; none twice.
        var all = first.GetProperty("rollouts").EnumerateArray().Concat(second.GetProperty("rollouts").EnumerateArray()).ToList();
        Assert.Equal(DashboardFleet.RolloutId, all[0].GetProperty("rolloutId").GetString());
        Assert.Equal(10, Ids(first).Length);
        Assert.Equal(2, Ids(second).Length);
        Assert.Equal(12, all.Select(r => r.GetProperty("rolloutId").GetString()).Distinct().Count());
        var finished = all.Skip(1).Select(r => r.GetProperty("updatedAt").GetDateTimeOffset()).ToList();
        Assert.Equal(finished.OrderDescending(), finished);
        Assert.All(all.Skip(1), r => Assert.Equal("Aborted", r.GetProperty("status").GetString()));
        Assert.Empty(Ids(await PageAsync("?rolloutPage=5")));
        using var bad = await fleet.SendAsync(HttpMethod.Get, "/admin/v1/dashboard?rolloutPage=-1", token: TestNode.ReadToken);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("rolloutPage", await bad.Content.ReadAsStringAsync());
    }

    [ChromiumFact]
    public async Task An_operator_turns_to_older_rollouts_and_back()
    {
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Binary, Headless = true, Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(new Uri(fleet.Node.BaseAddress, "/#token=" + Uri.EscapeDataString(TestNode.ReadToken)).ToString());
        var older = Ids(await PageAsync("?rolloutPage=1"));
        await Expect(page.GetByTestId("rollouts-range")).ToHaveTextAsync("rollouts 1-10 of 12");
        await Expect(page.Locator($"[data-rollout='{older[0]}']")).ToHaveCountAsync(0);
        await Expect(page.GetByTestId("rollouts-newer")).ToBeDisabledAsync();
        await page.GetByTestId("rollouts-older").ClickAsync();
        await Expect(page.GetByTestId("rollouts-range")).ToHaveTextAsync("rollouts 11-12 of 12");
        foreach (var id in older) await Expect(page.Locator($"[data-rollout='{id}']")).ToContainTextAsync("Aborted");
        await Expect(page.Locator($"[data-rollout='{DashboardFleet.RolloutId}']")).ToHaveCountAsync(0);
        await Expect(page.GetByTestId("rollouts-older")).ToBeDisabledAsync();
        await page.GetByTestId("rollouts-newer").ClickAsync();
        await Expect(page.Locator($"[data-rollout='{DashboardFleet.RolloutId}']")).ToBeVisibleAsync();
    }
}
