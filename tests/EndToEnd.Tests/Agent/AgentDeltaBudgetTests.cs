using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// A real node with the default delta settings (only Deltas:KeysDirectory set): a rollout makes it build the delta at the
/// level its memory budget holds, choosing the whole-release stream or per-file patches (auto), and the real orch-agent
/// upgrades over it.
/// </summary>
public sealed partial class AgentDeltaBudgetTests(ITestOutputHelper output)
{
    private async Task<AgentProcess.Result> Run(TestDevice d)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(180));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        return r;
    }

    [GeneratedRegex(@"(\d+) file\(s\) from delta patches, 0 fell back to chunks")]
    private static partial Regex Patched();

    [Fact]
    public async Task A_node_with_default_delta_settings_builds_the_delta_at_the_level_its_budget_holds_and_the_agent_upgrades_over_it()
    {
        var (delta, patched) = await UpgradeOverTheNodesDelta("dev-b", Releases.Stamped(1), Releases.Stamped(2));
        // The default budget holds level 22 for any release the format allows.
        Assert.Equal(DeltaMemory.HighestLevel(DeltaMemory.DefaultBudget), delta.Level);
        Assert.Equal(22, delta.Level);
        Assert.Equal(delta.Files.Count(f => f.Method is DeltaMethod.Patch or DeltaMethod.Release), patched);
        Assert.True(patched > 0);
    }

    [Fact]
    public async Task A_node_keeps_per_file_patches_when_the_whole_release_delta_would_cost_a_device_more_and_the_agent_upgrades_over_them()
    {
        // Hundreds of unchanged files: a whole-release delta lists each as a source in its manifest, per-file patches only the changed one.
        var v1 = Releases.V1();
        for (var i = 0; i < 300; i++) v1[$"share/doc/page{i:D3}.txt"] = Releases.Bytes(1000 + i, 100);
        var v2 = new Dictionary<string, byte[]>(v1) { ["bin/app"] = Releases.Stamped(2)["bin/app"] };
        var (delta, patched) = await UpgradeOverTheNodesDelta("dev-p", v1, v2);
        Assert.Null(delta.Release);
        Assert.Equal(22, delta.Level);
        Assert.Equal("bin/app", Assert.Single(delta.Files, f => f.Method == DeltaMethod.Patch).Path);
        Assert.Equal(1, patched);
    }

    /// <summary>
    /// A real node with default delta settings and releases 1.0 and 2.0; the real agent installs 1.0, a rollout to 2.0 makes
    /// the node build the delta, and the agent upgrades over it. Returns the delta and the files the agent took from it.
    /// </summary>
    private async Task<(DeltaManifest Delta, int Patched)> UpgradeOverTheNodesDelta(string deviceId, Dictionary<string, byte[]> first, Dictionary<string, byte[]> second)
    {
        using var keys = new TempDir();
        KeyFiles.Generate(keys.Path);
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Deltas:KeysDirectory"] = keys.Path });
        using var store = new TestStore(node.StoreRoot, keys.Path);
        var v1 = store.Publish("1.0", first);
        var v2 = store.Publish("2.0", second);
        using var d = new TestDevice(node.BaseUrl, credential: await node.ProvisionAsync(deviceId), deviceId: deviceId,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        await node.AssignAsync(deviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        await Run(d);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        using var admin = new HttpClient { BaseAddress = new Uri(node.BaseUrl) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        // The planner reads the device registry: wait until it shows the device on 1.0.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (JsonDocument.Parse(await admin.GetStringAsync($"admin/v1/devices?versionId={v1.VersionId}")).RootElement.GetProperty("total").GetInt32() < 1)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the device registry did not show {deviceId} on 1.0");
            await Task.Delay(100);
        }
        using (var created = await admin.PostAsJsonAsync("admin/v1/rollouts",
                   new { id = "ro-" + deviceId, product = "acme", version = "2.0", selector = new { deviceIds = new[] { deviceId } } }))
            Assert.True(created.IsSuccessStatusCode, $"create rollout: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");

        var path = StoreLayout.DeltaManifestPath("acme", "1.0", "2.0");
        deadline = DateTime.UtcNow.AddSeconds(120);
        while (store.Store.ReadFile(StoreLayout.SignaturePathFor(path)) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the node did not build the delta within 120 s of the rollout");
            await Task.Delay(200);
        }
        var delta = DeltaManifestSerializer.VerifyAndParse(store.Store.ReadFile(path)!, store.Store.ReadFile(StoreLayout.SignaturePathFor(path))!,
            store.SigningKey.PublicKey);

        // The rollout assigns 2.0 at a check-in; the run that installs it takes the delta.
        AgentProcess.Result? upgrade = null;
        for (var attempt = 0; attempt < 10 && (await node.StateAsync(deviceId)).InstalledVersionId != v2.VersionId; attempt++)
        {
            upgrade = await Run(d);
            if ((await node.StateAsync(deviceId)).InstalledVersionId != v2.VersionId) await Task.Delay(500);
        }
        Assert.Equal(v2.VersionId, (await node.StateAsync(deviceId)).InstalledVersionId);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(d));
        foreach (var (file, content) in second)
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(d.Layout.Client, file)));
        var patched = Patched().Match(upgrade!.Output);
        Assert.True(patched.Success, "the upgrade did not report its delta patches");
        return (delta, int.Parse(patched.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }
}
