using System.Diagnostics;
using System.Text;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>
/// A validly signed release whose links escape the install tree or loop (a leaked release key, or a careless
/// publisher): a real agent installing it through a real node refuses it at once, and nothing changes on disk.
/// </summary>
public sealed class LinkAttackTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string> Chains() => new()
    {
        // t's target is inside the tree when read alone; through s (which points at bin) it climbs out to /etc/passwd.
        { """{"path":"a1/a2/s","target":"../../bin"},{"path":"a1/a2/t","target":"s/../../../etc/passwd"}""", "a1/a2/t", "resolves outside the tree" },
        // A link to the root and a link through it: resolving t never ends.
        { """{"path":"a/b/s","target":"../.."},{"path":"a/b/t","target":"s/a/b/s/a/b/t"}""", "a/b/t", "more than 40 links" },
    };

    [Theory]
    [MemberData(nameof(Chains))]
    public async Task A_signed_release_whose_links_escape_or_loop_is_refused_and_nothing_changes(string links, string linkPath, string expected)
    {
        // Same release, re-signed with the links added (the inventory digest covers regular files only).
        await using var rig = await AttackRig.StartAsync("dev-link", sessionAttempts: 2, (store, v2) =>
        {
            var text = Encoding.UTF8.GetString(store.ManifestBytes(v2));
            Assert.EndsWith("\"symlinks\":[]}", text);
            store.WriteSigned("acme", "2.0", Encoding.UTF8.GetBytes(text[..^3] + "[" + links + "]}"));
        });
        var (node, d, v1, v2) = (rig.Node, rig.Device, rig.V1, rig.V2);
        var hiddenBefore = rig.HiddenZone();

        await node.AssignAsync("dev-link", "acme", v2.Version, v2.VersionId, v2.ManifestPath);
        var clock = Stopwatch.StartNew();
        var attack = await rig.RunAgentAsync();
        output.WriteLine(attack.Output + attack.Error);
        Assert.NotEqual(0, attack.ExitCode);
        Assert.Contains(expected, attack.Output + attack.Error);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"refusing took {clock.Elapsed}");

        // The installed tree is still exactly 1.0, no link was created, the hidden zone is unchanged.
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.False(File.Exists(Path.Combine(d.Layout.Client, linkPath)) || Directory.Exists(Path.Combine(d.Layout.Client, linkPath)));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(d.Layout.Client, "*", SearchOption.AllDirectories),
            p => new FileInfo(p).LinkTarget is not null);
        Assert.Equal(hiddenBefore, rig.HiddenZone());
        // The node recorded the refusal as failed attempts of this upgrade, with the reason; 1.0 stays installed.
        var state = await node.StateAsync("dev-link");
        Assert.Equal(v1.VersionId, state.InstalledVersionId);
        Assert.NotNull(state.LastFailure);
        Assert.Contains(expected, state.LastFailure!.Reason);
        Assert.Equal(DeviceStatus.Failed, state.Status);
    }
}
