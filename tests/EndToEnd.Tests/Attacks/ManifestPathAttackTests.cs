using System.Security.Cryptography;
using Orchestrator.DeviceAgent.Tests.Support;
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
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        // The validly signed 2.0 manifest, also served under the name of a release that does not exist.
        store.WriteSigned("acme", "9.9.9", store.ManifestBytes(v2));

        var secret = await node.ProvisionAsync("dev-path");
        using var d = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-path",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        await node.AssignAsync("dev-path", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        var first = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        Assert.True(first.ExitCode == 0, first.Output + first.Error);
        var hiddenBefore = Hashes(d.Layout.Zones.Hidden);

        await node.AssignAsync("dev-path", "acme", "9.9.9", v2.VersionId, manifestPath);
        var attack = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(attack.Output + attack.Error);
        Assert.NotEqual(0, attack.ExitCode);
        Assert.Contains(expected, attack.Output + attack.Error);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(hiddenBefore, Hashes(d.Layout.Zones.Hidden));
        var state = await node.StateAsync("dev-path");
        Assert.Equal(v1.VersionId, state.InstalledVersionId);
        Assert.Contains(expected, state.LastFailure?.Reason ?? "(no failure recorded)");
    }

    private static Dictionary<string, string> Hashes(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
}
