using System.Diagnostics;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>
/// A fact needing Debian's chromium: skipped with a reason when /usr/bin/chromium is missing, unless
/// ORCH_REQUIRE_CHROMIUM=1 (CI), in which case it runs and fails.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Binary = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Binary) && Environment.GetEnvironmentVariable("ORCH_REQUIRE_CHROMIUM") != "1")
            Skip = $"Chromium not installed at {Binary} (apt-get install -y chromium); set ORCH_REQUIRE_CHROMIUM=1 to make this a failure.";
    }
}

/// <summary>The dashboard rendered by headless Chromium against a node with data: screenshot and DOM checks.</summary>
public sealed class ChromiumDashboardTests(DashboardFleet fleet) : IClassFixture<DashboardFleet>, IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "orch-chromium-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Runs chromium headless with a fresh profile; the token travels in the URL fragment (never sent to the server).</summary>
    private async Task<(int ExitCode, string Out, string Error)> ChromiumAsync(string mode, string token)
    {
        var profile = Path.Combine(_dir, "profile-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(profile);
        var psi = new ProcessStartInfo(ChromiumFactAttribute.Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars", $"--user-data-dir={profile}", "--window-size=1280,900",
                     // Virtual time lets the page's fetch and first render finish before the dump/screenshot.
                     "--virtual-time-budget=8000", mode, new Uri(fleet.Node.BaseAddress, "/#token=" + Uri.EscapeDataString(token)).ToString() })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("chromium did not finish within 90 s: " + await stderr);
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    [ChromiumFact]
    public async Task Live_data_reaches_the_dom()
    {
        var (code, dom, error) = await ChromiumAsync("--dump-dom", TestNode.ReadToken);
        Assert.True(code == 0, $"chromium exited {code}: {error}");
        Assert.Contains("data-status=\"Failed\"", dom);
        Assert.Contains(DashboardFleet.FailureReason, dom);
        Assert.Contains("dash-broken", dom);
        Assert.Contains("acme 1.0.0", dom);
        Assert.Contains("acme 2.0.0", dom);
        Assert.Contains("(4 devices)", dom);
        Assert.Contains($"data-rollout=\"{DashboardFleet.RolloutId}\"", dom);
        Assert.Contains("acme 2.0.0 - wave 1 of 2 - 0/2 devices done", dom);
        Assert.Contains("live from akka.tcp://", dom);
        Assert.Matches("<td>operator</td><td>POST rollouts</td>", dom); // the fixture's rollout, in the audit trail's panel
        Assert.DoesNotContain("#token=", dom); // the fragment was moved to sessionStorage
    }

    [ChromiumFact]
    public async Task A_wrong_token_shows_the_login_form_and_no_data()
    {
        var (code, dom, error) = await ChromiumAsync("--dump-dom", "wrong-token");
        Assert.True(code == 0, $"chromium exited {code}: {error}");
        Assert.Contains("The admin token is not recognised.", dom);
        Assert.DoesNotContain("dash-broken", dom);
    }

    [ChromiumFact]
    public async Task Without_an_accepted_token_only_the_login_form_is_drawn()
    {
        var file = Path.Combine(_dir, "login.png");
        Directory.CreateDirectory(_dir);
        var (code, _, error) = await ChromiumAsync($"--screenshot={file}", "wrong-token");
        Assert.True(code == 0 && File.Exists(file), $"chromium exited {code}: {error}");
        var png = PngImage.Decode(await File.ReadAllBytesAsync(file));
        // White is the panels' colour: the login box (at most 640 px wide) is the only panel that may be drawn; empty
        // board panels ("no rollouts", "no failures") would read as real data.
        var white = png.CountColor(0xff, 0xff, 0xff);
        Assert.True(white < 640 * 400, $"{white} white pixels: more than the login form, so the (empty) board is drawn too");
        Assert.True(white > 300 * 100, $"{white} white pixels: the login form is not drawn");
    }

    [ChromiumFact]
    public async Task Screenshot_is_a_rendered_page_with_the_data_drawn()
    {
        var file = Path.Combine(_dir, "dashboard.png");
        Directory.CreateDirectory(_dir);
        var (code, _, error) = await ChromiumAsync($"--screenshot={file}", TestNode.ReadToken);
        Assert.True(code == 0 && File.Exists(file), $"chromium exited {code}: {error}");
        var keep = Environment.GetEnvironmentVariable("ORCH_DASHBOARD_SCREENSHOT");
        if (!string.IsNullOrEmpty(keep)) File.Copy(file, keep, overwrite: true);
        var png = PngImage.Decode(await File.ReadAllBytesAsync(file));
        Assert.Equal(1280, png.Width);
        Assert.Equal(900, png.Height);
        Assert.True(png.LuminanceVariance() > 200, $"screenshot looks blank: luminance variance {png.LuminanceVariance():0.0}");
        Assert.True(png.DistinctColors() > 50, $"only {png.DistinctColors()} colours");
        Assert.True(png.CountColor(0x16, 0x20, 0x2b) > 1280 * 30, "header bar not drawn");
        // The version-distribution bars and the in-progress part of the wave bars (#2f6fd6) exist only once data has
        // arrived and been drawn.
        Assert.True(png.CountColor(0x2f, 0x6f, 0xd6, 2) > 500, "version distribution bars not drawn");
    }
}
