using System.Diagnostics;
using System.Text.RegularExpressions;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The stat index (src/DeviceAgent/Storage/StatIndex.cs) with the real orch-agent process against a real node: once the
/// installed tree is verified, an idle start reads no file of it; damage made through the file system is still found
/// and repaired, also when the damaged file keeps its size and gets its mtime back (<c>touch -r</c>): the ctime
/// changed, and no user can set it back.
/// </summary>
public sealed class AgentStatIndexTests(ITestOutputHelper output)
{
    private async Task<string> RunAsync(TestDevice d)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        return r.Output + r.Error;
    }

    private static (int Files, int Read, int Unchanged) Checked(string log)
    {
        var m = Regex.Match(log, @"installed tree checked: (\d+) file\(s\), (\d+) read, (\d+) unchanged since verified");
        Assert.True(m.Success, "the agent did not say how it checked the installed tree");
        return (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value));
    }

    private static void Touch(params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo("touch") { ArgumentList = { "-r", args[0], args[1] } })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public async Task An_idle_start_reads_no_verified_file_and_damage_with_its_mtime_restored_is_still_repaired()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var secret = await node.ProvisionAsync("stat-1");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "stat-1",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        await node.AssignAsync("stat-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await RunAsync(d);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        var files = Releases.V1().Count;

        // Just installed: the staged hashes are only claimed, so the next start reads every file once; files changed
        // less than the settle time before are read again after that.
        await Task.Delay(StatIndex.SettleTime + TimeSpan.FromSeconds(1));
        Assert.Equal((files, files, 0), Checked(await RunAsync(d)));
        var idle = await RunAsync(d);
        Assert.Equal((files, 0, files), Checked(idle));
        Assert.Contains($"up to date at version ID {v1.VersionId}", idle);

        // Same size, one byte changed, mtime put back: only the ctime (and nothing the user controls) shows the write.
        var app = Path.Combine(d.Layout.Client, "bin", "app");
        var reference = Path.Combine(d.Dir.Path, "app.mtime");
        File.WriteAllBytes(reference, []);
        Touch(app, reference);
        var bytes = File.ReadAllBytes(app);
        bytes[4321] ^= 0x42;
        using (var fs = new FileStream(app, FileMode.Open, FileAccess.Write)) fs.Write(bytes);
        Touch(reference, app);
        Assert.Equal(File.GetLastWriteTimeUtc(reference), File.GetLastWriteTimeUtc(app));
        File.Delete(Path.Combine(d.Layout.Client, "lib", "extra.so"));

        var repair = await RunAsync(d);
        Assert.Equal((files - 1, 1, files - 2), Checked(repair));
        Assert.Contains("differs from what the stat index claimed at check-in; checking in again", repair);
        Assert.Contains("repair done", repair);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
    }
}
