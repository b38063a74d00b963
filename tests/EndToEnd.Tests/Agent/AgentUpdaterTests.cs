using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>One real node with release 1.0 of the client product, shared by the updater tests (each uses its own device).</summary>
public sealed class UpdaterNode : IAsyncLifetime
{
    public NodeUnderTest Node { get; private set; } = null!;
    public TestStore Store { get; private set; } = null!;
    public ChunkStore.Publishing.PublishResult V1 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:RetryBase"] = "00:00:00.100",
            ["Devices:RetryCap"] = "00:00:00.500",
        });
        Store = new TestStore(Node.StoreRoot);
        V1 = Store.Publish("1.0", Releases.V1());
    }

    /// <summary>A provisioned device with 1.0 assigned.</summary>
    public async Task<TestDevice> DeviceAsync(string id)
    {
        var secret = await Node.ProvisionAsync(id);
        var d = new TestDevice(Node.BaseUrl, credential: secret, deviceId: id,
            contentKey: Store.ContentKey.ToBytes(), trustRoot: Store.SigningKey.PublicKey.ToBytes());
        await Node.AssignAsync(id, "acme", V1.Version, V1.VersionId, V1.ManifestPath);
        return d;
    }

    public async Task DisposeAsync()
    {
        Store.Dispose();
        await Node.DisposeAsync();
    }
}

/// <summary>The updater's zones (free copy, hidden backup, virtual copy), through the real orch-agent binary against a real node.</summary>
public sealed class AgentUpdaterTests(UpdaterNode n, ITestOutputHelper output) : IClassFixture<UpdaterNode>
{
    private const UnixFileMode Rwxr_xr_x = (UnixFileMode)0b111_101_101;

    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit = 0, params string[] extra)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client", .. extra]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    [Fact]
    public async Task A_setuid_mode_is_damage_and_a_restored_updater_gets_its_recorded_modes_back()
    {
        using var d = await n.DeviceAsync("upd-modes");
        var exe = Path.Combine(d.Layout.FreeUpdater, "updater.bin");
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe));

        UpdaterTree.SetMode(exe, (UnixFileMode)0b100_111_111_111); // chmod 4777: same bytes, setuid and world-writable
        var r = await Run(d);
        Assert.Contains("updater restored from the hidden backup", r.Output);
        Assert.Contains("updater.bin", r.Output);
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe));
        Assert.Equal(n.V1.InventoryDigest, Releases.ClientDigest(d)); // and the session ran

        File.Delete(exe);
        UpdaterTree.SetMode(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so"), (UnixFileMode)0b110_000_000);
        r = await Run(d);
        Assert.Contains("updater restored from the hidden backup", r.Output);
        Assert.Equal("updater program v1", File.ReadAllText(exe));
        Assert.Equal(Rwxr_xr_x, UpdaterTree.ModeOf(exe)); // executable again, not 0644
        Assert.Equal((UnixFileMode)0b110_100_100, UpdaterTree.ModeOf(Path.Combine(d.Layout.FreeUpdater, "lib", "helper.so")));

        r = await Run(d);
        Assert.Contains("updater intact", r.Output);
        var status = await AgentProcess.RunAsync(["status", "--config", d.Config.SourcePath!]);
        output.WriteLine(status.Output + status.Error);
        Assert.Equal(0, status.ExitCode);
    }

    /// <summary>Peak RSS (KiB, from /usr/bin/time) of one idle start of the real agent.</summary>
    private async Task<long> IdlePeakRssKiB(TestDevice d)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/time")
            { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-f", "maxrss=%M", "dotnet", typeof(DeviceAgent.AgentCommandLine).Assembly.Location, "run", "--config", d.Config.SourcePath!, "--no-client" })
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("ORCH_AGENT_CRASH_AT");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        output.WriteLine(await stdout + await stderr);
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("updater intact", await stdout);
        var m = System.Text.RegularExpressions.Regex.Match(await stderr, @"maxrss=(\d+)");
        Assert.True(m.Success, await stderr);
        return long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task An_idle_start_streams_the_updater_and_backup_checks_in_bounded_memory()
    {
        if (!File.Exists("/usr/bin/time")) throw new InvalidOperationException("this test measures peak RSS with /usr/bin/time (Debian package 'time')");
        using var small = await n.DeviceAsync("upd-idle-small");
        using var big = await n.DeviceAsync("upd-idle-big");
        // A 96 MiB updater file: reading the free copy or decrypting the backup whole would each add about that much.
        using (var f = File.Create(Path.Combine(big.Layout.VirtualUpdater, "big.bin")))
        {
            var block = Releases.Bytes(42, 1 << 20);
            for (var i = 0; i < 96; i++) f.Write(block);
        }
        Assert.Equal(0, (await AgentProcess.RunAsync(["recover", "--from-virtual", "--config", big.Config.SourcePath!])).ExitCode);
        Assert.True(new FileInfo(big.Layout.Hidden(HiddenItem.UpdaterBackup)).Length > 96 << 20);
        await Run(small); // install 1.0, so the measured starts find nothing to do
        await Run(big);

        var smallRss = await IdlePeakRssKiB(small);
        var bigRss = await IdlePeakRssKiB(big);
        output.WriteLine($"idle start peak RSS: {smallRss} KiB with a 2-file updater, {bigRss} KiB with a 96 MiB updater");
        Assert.True(bigRss - smallRss < 24 * 1024, $"idle start with a 96 MiB updater peaked at {bigRss} KiB vs {smallRss} KiB: the check is not streaming");

        // The same device repairing: only now is the backup decrypted, which shows what the idle path avoids.
        File.Delete(Path.Combine(big.Layout.FreeUpdater, "big.bin"));
        var repaired = await Run(big);
        Assert.Contains("updater restored from the hidden backup", repaired.Output);
        Assert.Equal(UpdaterTree.DigestOf(big.Layout.VirtualUpdater), UpdaterTree.DigestOf(big.Layout.FreeUpdater));
    }
}
