using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>
/// Damaged files in the agent's resumable state (the build of a killed attempt and the part files of chunks in flight)
/// cost a re-download, never a failed attempt, and are never installed.
/// </summary>
public sealed class ChunkCacheDamageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_damaged_build_and_garbage_part_files_are_fetched_again_and_the_upgrade_succeeds_first_time()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        var secret = await node.ProvisionAsync("dev-cache");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-cache",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        string[] run = ["run", "--config", d.Config.SourcePath!, "--no-client"];
        await node.AssignAsync("dev-cache", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        Assert.Equal(0, (await AgentProcess.RunAsync(run)).ExitCode);

        // The upgrade is killed after writing two chunks into its build.
        await node.AssignAsync("dev-cache", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var killed = await AgentProcess.RunAsync(run, new Dictionary<string, string> { ["ORCH_AGENT_CRASH_AT"] = CrashPoints.ChunkPlaced + "#2" });
        Assert.Equal(137, killed.ExitCode);
        var manifest = store.Manifest(v2);
        Assert.True(Releases.BuiltChunks(d, manifest, Releases.V2()).Count >= 2, "the killed attempt left no chunk in its build");

        // Then its state rots (a torn write, a bad sector, a tampered file): every built file is garbage of the same
        // length, one is replaced by a link to a file outside the tree, and every chunk 2.0 adds has a garbage part file.
        var build = TreeBuild.FolderOf(d.Layout);
        var builtFiles = Directory.EnumerateFiles(build, "*", SearchOption.AllDirectories).ToList();
        Assert.NotEmpty(builtFiles);
        foreach (var f in builtFiles)
            File.WriteAllBytes(f, Releases.Bytes(f.GetHashCode(), (int)new FileInfo(f).Length));
        var outside = Path.Combine(d.Dir.Path, "outside.bin");
        File.WriteAllBytes(outside, Releases.Bytes(77, 1000));
        File.Delete(builtFiles[0]);
        File.CreateSymbolicLink(builtFiles[0], outside);
        var old = store.Manifest(v1).Files.SelectMany(f => f.Chunks).Select(c => c.Id).ToHashSet();
        var added = manifest.Files.SelectMany(f => f.Chunks).Select(c => c.Id).Where(id => !old.Contains(id)).Distinct().ToList();
        Assert.NotEmpty(added);
        Directory.CreateDirectory(d.Layout.PartialChunks);
        foreach (var id in added)
        {
            var stored = TestStore.StoredLength(node.StoreRoot, id);
            File.WriteAllBytes(Path.Combine(d.Layout.PartialChunks, id.Hex + ".part"), Releases.Bytes(id.GetHashCode(), (int)(stored / 2)));
        }

        var rerun = await AgentProcess.RunAsync(run);
        output.WriteLine(rerun.Output + rerun.Error);
        Assert.Equal(0, rerun.ExitCode);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Contains("0 already built by an earlier attempt", rerun.Output); // no damaged range was trusted
        Assert.DoesNotContain("attempt 1 failed", rerun.Output + rerun.Error);
        Assert.Equal(Releases.Bytes(77, 1000), File.ReadAllBytes(outside));
        Assert.False(Directory.Exists(build));
        Assert.Empty(Directory.Exists(d.Layout.PartialChunks) ? Directory.EnumerateFiles(d.Layout.PartialChunks) : []);
        var state = await node.StateAsync("dev-cache");
        Assert.Equal((DeviceStatus.Completed, v2.VersionId, 0), (state.Status, state.InstalledVersionId, state.FailedAttempts));
        Assert.Null(state.LastFailure);
    }
}
