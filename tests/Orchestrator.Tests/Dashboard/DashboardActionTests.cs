using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Playwright;
using Orchestrator.Node.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>
/// The dashboard driven as an operator would, clicking in Debian's Chromium through Playwright: rollout actions with a
/// reason, what a read-only token is told, and the device page.
/// </summary>
public sealed class DashboardActionTests(DashboardFleet fleet) : IClassFixture<DashboardFleet>
{
    private async Task<(IPlaywright Playwright, IBrowser Browser, IPage Page)> OpenAsync(string token)
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Binary,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(new Uri(fleet.Node.BaseAddress, "/#token=" + Uri.EscapeDataString(token)).ToString());
        await Expect(page.Locator($"[data-rollout='{DashboardFleet.RolloutId}']")).ToBeVisibleAsync();
        return (playwright, browser, page);
    }

    private async Task<JsonElement> RolloutAsync()
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"/admin/v1/rollouts/{DashboardFleet.RolloutId}");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestNode.ReadToken);
        using var res = await fleet.Node.Http.SendAsync(req);
        return JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static async Task ActAsync(IPage page, string action, string reason)
    {
        await page.Locator($"[data-rollout='{DashboardFleet.RolloutId}'] button[data-action='{action}']").ClickAsync();
        await page.GetByTestId("action-reason").FillAsync(reason);
        await page.GetByTestId("action-confirm").ClickAsync();
    }

    [ChromiumFact]
    public async Task An_operator_pauses_and_resumes_a_rollout_with_a_reason_and_a_read_only_token_is_told_why_it_cannot()
    {
        var (playwright, browser, page) = await OpenAsync(TestNode.OperateToken);
        using (playwright)
        await using (browser)
        {
            await ActAsync(page, "pause", "canary error rate");
            await Expect(page.GetByTestId("action-result")).ToContainTextAsync($"pause {DashboardFleet.RolloutId}: done, now Paused");
            var paused = await RolloutAsync();
            Assert.Equal("Paused", paused.GetProperty("status").GetString());
            await Expect(page.Locator($"[data-rollout='{DashboardFleet.RolloutId}']")).ToContainTextAsync("reason: canary error rate");
            // The audit trail names the dashboard's token and keeps the reason.
            await Expect(page.GetByTestId("changes")).ToContainTextAsync("canary error rate");

            await ActAsync(page, "resume", "fixed");
            await Expect(page.GetByTestId("action-result")).ToContainTextAsync($"resume {DashboardFleet.RolloutId}: done, now Running");
            Assert.Equal("Running", (await RolloutAsync()).GetProperty("status").GetString());
        }

        var (readPlaywright, readBrowser, readPage) = await OpenAsync(TestNode.ReadToken);
        using (readPlaywright)
        await using (readBrowser)
        {
            await ActAsync(readPage, "pause", "should not happen");
            await Expect(readPage.GetByTestId("action-result")).ToContainTextAsync("refused");
            await Expect(readPage.GetByTestId("action-result")).ToContainTextAsync("operate scope");
            Assert.Equal("Running", (await RolloutAsync()).GetProperty("status").GetString());
        }
    }

    [ChromiumFact]
    public async Task The_device_page_shows_state_failure_and_history_in_words()
    {
        var (playwright, browser, page) = await OpenAsync(TestNode.ReadToken);
        using (playwright)
        await using (browser)
        {
            // The published releases, newest first, with the version IDs devices report.
            var releases = page.GetByTestId("releases");
            await Expect(releases.Locator("tbody tr").First).ToContainTextAsync("acme2.0.02");
            await Expect(releases).ToContainTextAsync("1.0.0");

            await page.GetByTestId("device-input").FillAsync("dash-broken");
            await page.GetByTestId("device-show").ClickAsync();
            var device = page.GetByTestId("device");
            await Expect(device.Locator("[data-device='dash-broken']")).ToContainTextAsync("Failed");
            await Expect(device).ToContainTextAsync(DashboardFleet.FailureReason);
            await Expect(device).ToContainTextAsync("told to repair 1 damaged file of 1.0.0");

            // Search by attribute and status: the registry's answer, a click opens the device.
            await page.GetByTestId("search-input").FillAsync("status=Idle site=lab-7");
            await page.GetByTestId("search-run").ClickAsync();
            await Expect(page.GetByTestId("search-count")).ToHaveTextAsync("1 of 1 matching device(s)");
            await page.Locator("[data-device-link='dash-new']").ClickAsync();
            await Expect(device.Locator("[data-device='dash-new']")).ToContainTextAsync("Idle");
            await page.GetByTestId("search-input").FillAsync("status=Nope");
            await page.GetByTestId("search-run").ClickAsync();
            await Expect(page.GetByTestId("search")).ToContainTextAsync("status='Nope' is invalid");

            await page.GetByTestId("device-input").FillAsync("no-such-device");
            await page.GetByTestId("device-show").ClickAsync();
            await Expect(device).ToContainTextAsync("device no-such-device:");
        }
    }

    [ChromiumFact]
    public async Task A_rollout_created_from_the_browser_previews_its_devices_first()
    {
        var (playwright, browser, page) = await OpenAsync(TestNode.OperateToken);
        using (playwright)
        await using (browser)
        {
            await page.GetByTestId("c-product").FillAsync("acme");
            await page.GetByTestId("c-version").FillAsync("2.0.0");
            // dash-new: the one fixture device no other test of this class reads or claims.
            await page.GetByTestId("c-devices").FillAsync("dash-new");
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("selects 1 device(s) of channel stable for acme 2.0.0; waves 1; running version ID 2: 1 (dash-new)");
            // The same device selected by the attribute its device reported; a malformed key is named by the node.
            await page.GetByTestId("c-devices").FillAsync("");
            await page.GetByTestId("c-attributes").FillAsync("Site=lab-7");
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("attribute key 'Site' is invalid");
            await page.GetByTestId("c-attributes").FillAsync("site=lab-7");
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("selects 1 device(s) of channel stable for acme 2.0.0; waves 1; running version ID 2: 1 (dash-new)");
            await page.GetByTestId("device-input").FillAsync("dash-new");
            await page.GetByTestId("device-show").ClickAsync();
            await Expect(page.GetByTestId("device")).ToContainTextAsync("site=lab-7");
            // A version that is not published: the node's refusal, before anything is created.
            await page.GetByTestId("c-version").FillAsync("9.9.9");
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("version '9.9.9' of 'acme' is not in the release index");
            await page.GetByTestId("c-version").FillAsync("2.0.0");
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("selects 1 device(s)");
            await page.GetByTestId("c-create").ClickAsync();
            await Expect(page.GetByTestId("c-preview")).ToContainTextAsync("created rollout ro-");
            var id = System.Text.RegularExpressions.Regex.Match(await page.GetByTestId("c-preview").TextContentAsync() ?? "", @"ro-[0-9a-f-]+").Value;
            await Expect(page.Locator($"[data-rollout='{id}']")).ToContainTextAsync("acme 2.0.0");
        }
    }
}
