using System.Diagnostics;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Protocol;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Killed from outside (SIGKILL at arbitrary moments, not at injected points) during a rate-limited download, the
/// agent resumes on each restart from the chunks it wrote into its build (verified by their tags) and the part files of
/// chunks in flight: the release is fetched about once, not once per
/// restart, and the tree ends exactly at the new version.
/// </summary>
public sealed class AgentKillResumeTests(TwoReleases r, ITestOutputHelper output) : IClassFixture<TwoReleases>
{
    [Fact]
    public async Task Repeated_kills_during_download_resume_without_refetching()
    {
        using var d = new TestDevice(r.Gateway.BaseUrl, contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        // 400 kB/s: the ~1.2 MB release takes about three seconds, so kills land mid-download.
        r.Gateway.Decide = FakeGateway.Assign(r.V1.VersionId, r.V1.Version, r.V1.ManifestPath, r.V1.InventoryDigest,
            grant: new DownloadGrant(long.MaxValue / 2, 400_000, DateTimeOffset.UtcNow.AddHours(1)));
        var servedBefore = r.Gateway.StoreBytesServed;
        var random = new Random(7);
        for (var kill = 0; kill < 3; kill++)
        {
            var psi = AgentProcess.StartInfo(["run", "--config", d.Config.SourcePath!, "--no-client"]);
            using var p = Process.Start(psi)!;
            var outTask = p.StandardOutput.ReadToEndAsync();
            // Wait until it is downloading (the build's files exist once the download starts), then kill it at a random moment.
            var buildDir = TreeBuild.FolderOf(d.Layout);
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!(Directory.Exists(buildDir) && Directory.EnumerateFiles(buildDir, "*", SearchOption.AllDirectories).Any()) && !p.HasExited && DateTime.UtcNow < deadline)
                await Task.Delay(20);
            await Task.Delay(random.Next(50, 400));
            if (!p.HasExited) p.Kill();
            await p.WaitForExitAsync();
            output.WriteLine($"kill {kill}: exit {p.ExitCode}\n{await outTask}");
        }
        var final = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(final.Output + final.Error);
        Assert.Equal(0, final.ExitCode);
        Assert.Equal(r.V1.InventoryDigest, Releases.ClientDigest(d));
        var stored = r.Store.Manifest(r.V1).DistinctChunks()
            .Sum(id => TestStore.StoredLength(r.Store.Root, id));
        var served = r.Gateway.StoreBytesServed - servedBefore;
        output.WriteLine($"release: {stored} stored bytes; served over 4 runs: {served}");
        // Each kill may lose the chunks in flight (parallelism 2, <= 256 KiB each) plus the manifest.
        Assert.True(served < stored + 4 * (2 * 262_144 + 20_000), $"served {served} bytes for a {stored}-byte release over 4 runs");
    }
}
