using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Protocol;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>Shared store with v1 and v2 and a gateway serving it.</summary>
public sealed class TwoReleases : IAsyncLifetime
{
    public TestStore Store { get; } = new();
    public FakeGateway Gateway { get; private set; } = null!;
    public PublishResult V1 { get; private set; } = null!;
    public PublishResult V2 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        V1 = Store.Publish("1.0", Releases.V1());
        V2 = Store.Publish("2.0", Releases.V2());
        Gateway = await FakeGateway.StartAsync(Store.Root, TestDevice.Credential);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        Store.Dispose();
    }
}

/// <summary>
/// The real orch-agent process is killed (SIGKILL) at many points of an upgrade. The next start must find the
/// client tree exactly at the old or the new version, with the matching version recorded, and a later run must
/// finish the upgrade, resuming from the chunks it already verified.
/// </summary>
public sealed class AgentCrashTests(TwoReleases r, ITestOutputHelper output) : IClassFixture<TwoReleases>
{
    public static TheoryData<string, bool> Points => new()
    {
        // point (occurrence), and whether the new version must be in place after the next start
        { CrashPoints.ChunkPlaced + "#1", false },
        { CrashPoints.ChunkPlaced + "#5", false },
        { CrashPoints.FileStaged + "#1", false },
        { CrashPoints.FileStaged + "#4", false },
        { CrashPoints.FileStaged + "#6", false },
        { CrashPoints.JournalWritten, true },
        { CrashPoints.OldRetired, true },
        { CrashPoints.NewInPlace, true },
        { CrashPoints.VersionRecorded, true },
        { CrashPoints.JournalRemoved, true },
    };

    [Theory]
    [MemberData(nameof(Points))]
    public async Task Killed_during_an_upgrade_leaves_exactly_the_old_or_the_new_tree(string point, bool newExpected)
    {
        // Every case is a fresh device under the fixture's one device id.
        r.Gateway.NewDeviceTakesTheId();
        using var d = new TestDevice(r.Gateway.BaseUrl, contentKey: r.Store.ContentKey.ToBytes(), trustRoot: r.Store.SigningKey.PublicKey.ToBytes());
        await Releases.InstallAsync(d, r.Gateway, r.V1);
        // lib/extra.so is the same in both releases: the upgrade keeps that very file (a hard link into staging).
        var unchanged = Path.Combine(d.Layout.Client, "lib", "extra.so");
        var unchangedInode = Releases.Inode(unchanged);
        string[] run = ["run", "--config", d.Config.SourcePath!, "--no-client"];

        // 1. Upgrade to v2, killed at the point.
        r.Gateway.Decide = FakeGateway.Assign(r.V2.VersionId, r.V2.Version, r.V2.ManifestPath, r.V2.InventoryDigest);
        var crashed = await AgentProcess.RunAsync(run, new Dictionary<string, string> { ["ORCH_AGENT_CRASH_AT"] = point });
        output.WriteLine(crashed.Output + crashed.Error);
        Assert.Equal(137, crashed.ExitCode);
        Assert.Contains("crash injected at " + point.Split('#')[0], crashed.Error);

        // 2. Next start, server says nothing to do: the agent's own recovery runs first.
        r.Gateway.Decide = _ => new CheckInResponse(UpdateAction.None, null, null, null, null, null, 3600, null);
        var next = await AgentProcess.RunAsync(run);
        output.WriteLine(next.Output + next.Error);
        Assert.Equal(0, next.ExitCode);
        var digest = Releases.ClientDigest(d);
        var version = d.Hidden.ReadInstalledVersion();
        var expected = newExpected ? r.V2 : r.V1;
        Assert.Equal(expected.InventoryDigest, digest);
        Assert.Equal(expected.VersionId, version.VersionId);
        Assert.Equal(expected.VersionId, r.Gateway.CheckIns.Last().InstalledVersionId);
        Assert.False(Directory.Exists(d.Layout.Staging));
        Assert.False(Directory.Exists(d.Layout.Retired));

        // 3. The upgrade is assigned again and completes.
        r.Gateway.Decide = FakeGateway.Assign(r.V2.VersionId, r.V2.Version, r.V2.ManifestPath, r.V2.InventoryDigest);
        var requestsBefore = r.Gateway.StoreRequests;
        var final = await AgentProcess.RunAsync(run);
        output.WriteLine(final.Output + final.Error);
        Assert.Equal(0, final.ExitCode);
        Assert.Equal(r.V2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(r.V2.VersionId, d.Hidden.ReadInstalledVersion().VersionId);
        Assert.Equal(unchangedInode, Releases.Inode(unchanged));
        if (point == CrashPoints.ChunkPlaced + "#5")
        {
            // Five chunks were written into the build before the kill: the rerun verifies them by their tags and does not fetch them again.
            var fetched = r.Gateway.StoreRequests - requestsBefore - 2; // minus manifest and signature
            var full = int.Parse(System.Text.RegularExpressions.Regex.Match(crashed.Output, @"(\d+) chunk\(s\) to download").Groups[1].Value);
            output.WriteLine($"first attempt needed {full} chunks; the resumed run fetched {fetched}");
            Assert.True(fetched <= full - 5, $"resumed run fetched {fetched} chunks of {full}");
        }
    }
}
