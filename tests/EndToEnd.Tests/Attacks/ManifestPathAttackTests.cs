using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Attacks;

/// <summary>
/// Manifest paths are the store's grammar and name what they hold: a real agent told by a real node (whose assignment
/// or store was tampered with) to fetch a path that only decodes to a manifest path, or a manifest holding another
/// release than its path names, refuses and installs nothing.
/// </summary>
public sealed class ManifestPathAttackTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("manifests/%2e%2e/%2e%2e/x/2.0.json", "is not a store manifest path")]
    [InlineData("manifests/acme/2.0.json?x=1", "is not a store manifest path")]
    [InlineData("manifests/acme/9.9.9.json", "not the release its path names")]
    public async Task A_tampered_manifest_path_is_refused_and_nothing_changes(string manifestPath, string expected)
    {
        // The validly signed 2.0 manifest, also served under the name of a release that does not exist.
        await using var rig = await AttackRig.StartAsync("dev-path", sessionAttempts: 1,
            (store, v2) => store.WriteSigned("acme", "9.9.9", store.ManifestBytes(v2)));
        var hiddenBefore = rig.HiddenZone();

        await rig.Node.AssignAsync("dev-path", "acme", "9.9.9", rig.V2.VersionId, manifestPath);
        var attack = await rig.RunAgentAsync();
        output.WriteLine(attack.Output + attack.Error);
        Assert.NotEqual(0, attack.ExitCode);
        Assert.Contains(expected, attack.Output + attack.Error);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        Assert.Equal(hiddenBefore, rig.HiddenZone());
        var state = await rig.Node.StateAsync("dev-path");
        Assert.Equal(rig.V1.VersionId, state.InstalledVersionId);
        Assert.Contains(expected, state.LastFailure?.Reason ?? "(no failure recorded)");
    }
}
