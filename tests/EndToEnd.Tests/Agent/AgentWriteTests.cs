using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Flash wear with the real orch-agent process against a real node: an upgrade that changes a few files of a larger tree,
/// and a repair of a deleted and a damaged file, write (bytes the kernel accounts to the agent, /proc/&lt;pid&gt;/io) a
/// small multiple of what changed, not the tree; unchanged files stay the very same files (same inode).
/// </summary>
public sealed class AgentWriteTests(ITestOutputHelper output)
{
    private const int FileCount = 24;
    private const int FileSize = 400_000;

    private static Dictionary<string, byte[]> Tree(params int[] changed)
    {
        var files = new Dictionary<string, byte[]>();
        for (var i = 0; i < FileCount; i++)
            files[$"lib/part{i:D2}.so"] = Releases.Bytes(changed.Contains(i) ? 1000 + i : i, FileSize);
        return files;
    }

    private async Task<long> RunAsync(TestDevice d, string what)
    {
        var (r, written, _) = await AgentProcess.RunMeasuredAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        output.WriteLine($"{what}: {written} bytes written");
        return written;
    }

    [Fact]
    public async Task An_upgrade_and_a_repair_write_what_changed_not_the_tree()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Tree());
        var v2 = store.Publish("2.0", Tree(3, 17));
        var secret = await node.ProvisionAsync("wear-1");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "wear-1",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        const long tree = (long)FileCount * FileSize;

        await node.AssignAsync("wear-1", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var install = await RunAsync(d, "first install");
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.True(install >= tree, $"the first install wrote {install} bytes, less than the {tree}-byte tree: the measurement is not counting");

        var unchanged = Path.Combine(d.Layout.Client, "lib", "part05.so");
        var inodeBefore = Releases.Inode(unchanged);
        await node.AssignAsync("wear-1", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var upgrade = await RunAsync(d, "upgrade of 2 of 24 files");
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(v2.VersionId, (await node.StateAsync("wear-1")).InstalledVersionId);
        Assert.Equal(inodeBefore, Releases.Inode(unchanged));
        // Two changed files (800 kB): each is fetched into the chunk cache once and written into the new tree once. A
        // partial chunk is written as its bytes arrive (so a killed agent resumes), and on a loaded machine a page written
        // back between two arrivals is counted again: the bound allows that, and stays far below the 9.6 MB tree that a
        // full staging copy writes.
        const long changed = 2L * FileSize;
        const double bound = 3.5 * changed + 256 * 1024;
        Assert.True(upgrade <= bound, $"the upgrade wrote {upgrade} bytes for {changed} changed bytes of a {tree}-byte tree");

        File.Delete(Path.Combine(d.Layout.Client, "lib", "part08.so"));
        var damaged = Path.Combine(d.Layout.Client, "lib", "part11.so");
        var bytes = File.ReadAllBytes(damaged);
        bytes[1234] ^= 0x5a;
        File.WriteAllBytes(damaged, bytes);
        var intact = Path.Combine(d.Layout.Client, "lib", "part20.so");
        var intactInode = Releases.Inode(intact);
        var repair = await RunAsync(d, "repair of 1 deleted and 1 damaged file");
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(intactInode, Releases.Inode(intact));
        Assert.True(repair <= bound, $"the repair wrote {repair} bytes for {changed} damaged bytes of a {tree}-byte tree");
    }
}
