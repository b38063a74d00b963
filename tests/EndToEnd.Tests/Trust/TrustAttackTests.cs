using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Trust;

/// <summary>
/// Issue 14 with real processes: the real orch-agent, provisioned with a root document, against a real node whose
/// check-in answers pass through a scripted hostile gateway. Each attack must be refused with its specific reason,
/// and leave the installed tree and the hidden zone exactly as they were.
/// </summary>
public sealed class TrustAttackTests(ITestOutputHelper output)
{
    private static Task<TrustRig> StartAsync(double lifetimeMinutes = 10) => TrustRig.StartAsync(lifetimeMinutes);

    private static Task<TestDevice> DeviceAsync(TrustRig rig, string id, int attempts = 2) => rig.DeviceAsync(id, attempts);

    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    /// <summary>Installs v2 through the (for now forwarding) hostile gateway.</summary>
    private async Task InstallV2Async(TrustRig rig, TestDevice d)
    {
        await rig.Node.AssignAsync(d.Config.DeviceId, "acme", rig.V2.Version, rig.V2.VersionId, rig.V2.ManifestPath);
        await Run(d);
        Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(rig.V2.VersionId, d.Hidden.ReadVersionRecord()!.VersionId);
    }

    /// <summary>The node's answer with the unsigned fields rewritten to "upgrade to the old, validly signed v1".</summary>
    private static string OfferV1(TrustRig rig, string nodeAnswer, bool keepDirective)
    {
        var o = (JsonObject)JsonNode.Parse(nodeAnswer)!;
        o["action"] = "Upgrade";
        o["targetVersion"] = rig.V1.Version;
        o["targetVersionId"] = rig.V1.VersionId;
        o["manifestPath"] = rig.V1.ManifestPath;
        if (!keepDirective) o.Remove("directive");
        return o.ToJsonString();
    }

    [Fact]
    public async Task Unsigned_replayed_expired_and_other_device_answers_are_refused_and_change_nothing()
    {
        await using var rig = await StartAsync(lifetimeMinutes: 0.05); // directives live 3 s
        using var d = await DeviceAsync(rig, "dev-1");
        var other = await rig.Node.ProvisionAsync("dev-2");
        string? captured = null;
        rig.Hostile.OnCheckIn = async c =>
        {
            var answer = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            captured ??= answer.Body;
            return answer;
        };
        await InstallV2Async(rig, d);
        var before = TrustRig.Snapshot(d);

        // 1. Unsigned: the directive is stripped and the old signed release offered.
        rig.Hostile.OnCheckIn = async c => (200, OfferV1(rig, (await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization)).Body, keepDirective: false));
        var r = await Run(d, expectedExit: 1);
        Assert.Contains("carries no directive (unsigned answer); refused, nothing changed", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // 2. Replayed: a validly signed answer of an earlier check-in (another nonce).
        rig.Hostile.OnCheckIn = _ => Task.FromResult((200, captured!));
        r = await Run(d, expectedExit: 1);
        Assert.Matches("directive refused: it answers nonce [0-9a-f]{32}, this check-in sent [0-9a-f]{32} \\(replayed answer\\)", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // 3. Expired: the node's own answer to this very check-in, held back past its 3 s validity.
        rig.Hostile.OnCheckIn = async c =>
        {
            var answer = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            await Task.Delay(TimeSpan.FromSeconds(4));
            return answer;
        };
        r = await Run(d, expectedExit: 1);
        Assert.Contains("directive refused: it expired at", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // 4. Another device: the check-in (with this device's nonce) forwarded under a stolen credential of dev-2.
        rig.Hostile.OnCheckIn = c => rig.Hostile.ForwardAsync("dev-2", c.Body, null, secret: other);
        r = await Run(d, expectedExit: 1);
        Assert.Contains("directive refused: it is for device 'dev-2', this is 'dev-1'", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // 5. Tampered: the directive's payload altered (signature no longer matches). The check-in is forwarded without
        // the agent's batchDirectives (re-signed with its credential), so the node signs this directive on its own
        // (BatchDirectiveTests: the batch form).
        var secret = System.Text.Encoding.UTF8.GetString(d.Hidden.ReadRequired(HiddenItem.DeviceCredential));
        rig.Hostile.OnCheckIn = async c =>
        {
            c.Body.Remove("batchDirectives");
            var o = (JsonObject)JsonNode.Parse((await rig.Hostile.ForwardChangedAsync(c, secret)).Body)!;
            var envelope = (JsonObject)JsonNode.Parse(o["directive"]!.GetValue<string>())!;
            var payload = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(envelope["payload"]!.GetValue<string>()))
                .Replace("\"action\":\"None\"", "\"action\":\"Upgrade\"");
            envelope["payload"] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(payload));
            o["directive"] = envelope.ToJsonString();
            return (200, o.ToJsonString());
        };
        r = await Run(d, expectedExit: 1);
        Assert.Contains("valid signature(s) of the 'director' role", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // Through an honest line again the device is fine and still on v2.
        rig.Hostile.OnCheckIn = null;
        r = await Run(d);
        Assert.Contains($"up to date at version ID {rig.V2.VersionId}", r.Output);
        TrustRig.AssertUnchanged(before, d);
    }

    [Fact]
    public async Task Deleting_or_replacing_the_version_record_or_recovering_does_not_let_a_hostile_gateway_install_an_old_release()
    {
        await using var rig = await StartAsync();
        using var d = await DeviceAsync(rig, "dev-3");
        await rig.Node.AssignAsync("dev-3", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        await Run(d);
        var v1Record = File.ReadAllBytes(d.Layout.Hidden(HiddenItem.InstalledVersion)); // an older sealed copy, kept by the attacker
        await InstallV2Async(rig, d);
        Assert.Equal(rig.V2.VersionId, (await rig.Node.StateAsync("dev-3")).FloorVersionId);

        // The hostile gateway offers the old signed release in the unsigned fields, with or without the node's directive.
        var keepDirective = true;
        rig.Hostile.OnCheckIn = async c => (200, OfferV1(rig, (await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization)).Body, keepDirective));

        async Task AttackAsync(string what, Action damage)
        {
            damage();
            keepDirective = false;
            var refused = await Run(d, expectedExit: 1);
            Assert.Contains("carries no directive", refused.Output);
            Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
            keepDirective = true;
            // With the node's directive the agent follows the signed answer (v2, the floor), never the unsigned v1.
            var run = await Run(d);
            output.WriteLine($"--- {what}: {run.Output}");
            Assert.DoesNotContain($"installed {rig.V1.Version} ", run.Output);
            Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
            Assert.Equal(rig.V2.VersionId, d.Hidden.ReadVersionRecord()!.VersionId);
        }

        await AttackAsync("deleted record", () => File.Delete(d.Layout.Hidden(HiddenItem.InstalledVersion)));
        await AttackAsync("older sealed copy", () => File.WriteAllBytes(d.Layout.Hidden(HiddenItem.InstalledVersion), v1Record));
        await AttackAsync("recover --from-virtual", () =>
        {
            File.Delete(d.Layout.Hidden(HiddenItem.InstalledVersion));
            var recover = AgentProcess.RunAsync(["recover", "--from-virtual", "--config", d.Config.SourcePath!]).GetAwaiter().GetResult();
            Assert.Equal(0, recover.ExitCode);
            Assert.Contains("left unknown", recover.Output + recover.Error);
            Assert.Null(d.Hidden.ReadVersionRecord()); // never reset to 0
        });
        Assert.Equal(rig.V2.VersionId, (await rig.Node.StateAsync("dev-3")).FloorVersionId);
    }

    [Fact]
    public async Task A_fresh_device_does_not_install_below_the_release_signed_product_floor()
    {
        await using var rig = await StartAsync();
        rig.Keys.WriteFloor(rig.Store.Store, "acme", rig.V2.Version, rig.V2.VersionId);
        using var d = await DeviceAsync(rig, "dev-4");
        var before = TrustRig.Snapshot(d);
        // A mistaken (or compromised) director assigns the old release; the release-signed floor still stops it.
        await rig.Node.AssignAsync("dev-4", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        var r = await Run(d, expectedExit: 1);
        Assert.Contains($"target version ID {rig.V1.VersionId} is below the release-signed product floor of 'acme' (2.0, version ID {rig.V2.VersionId})", r.Output);
        TrustRig.AssertUnchanged(before, d);
        Assert.Empty(Directory.Exists(d.Layout.Client) ? Directory.GetFiles(d.Layout.Client, "*", SearchOption.AllDirectories) : []);

        await rig.Node.AssignAsync("dev-4", "acme", rig.V2.Version, rig.V2.VersionId, rig.V2.ManifestPath);
        await Run(d);
        Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task An_oversized_signature_or_manifest_is_refused_at_its_exact_size_and_changes_nothing()
    {
        await using var rig = await StartAsync();
        using var d = await DeviceAsync(rig, "dev-size", attempts: 1);
        await rig.Node.AssignAsync("dev-size", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        await Run(d);
        var before = TrustRig.Snapshot(d);
        await rig.Node.AssignAsync("dev-size", "acme", rig.V2.Version, rig.V2.VersionId, rig.V2.ManifestPath);
        var manifest = File.ReadAllBytes(Path.Combine(rig.Store.Root, rig.V2.ManifestPath));
        var signature = File.ReadAllBytes(Path.Combine(rig.Store.Root, rig.V2.ManifestPath + ".sig"));
        var padding = new byte[4 << 20]; // sent without a Content-Length: only the agent's cap ends the read

        // The valid signature followed by 4 MiB: read only up to its 64 bytes, never up to the manifest maximum.
        rig.Hostile.OnStore = path => path == rig.V2.ManifestPath + ".sig" ? [.. signature, .. padding] : null;
        var r = await Run(d, expectedExit: 1);
        Assert.Contains($"response for '{rig.V2.ManifestPath}.sig' exceeds the 64 bytes expected", r.Output);
        TrustRig.AssertUnchanged(before, d);

        // The valid manifest followed by 4 MiB: the directive pins its exact length. Its compact encodings (offered
        // by the node, tried first) are served as garbage, so the agent falls back to the JSON.
        var compactPrefix = rig.V2.ManifestPath[..^".json".Length];
        rig.Hostile.OnStore = path => path == rig.V2.ManifestPath ? [.. manifest, .. padding]
            : path.StartsWith(compactPrefix, StringComparison.Ordinal) && path.EndsWith(".zst", StringComparison.Ordinal) ? "not a zstd frame"u8.ToArray() : null;
        r = await Run(d, expectedExit: 1);
        Assert.Contains($"response for '{rig.V2.ManifestPath}' exceeds the {manifest.Length} bytes expected", r.Output);
        TrustRig.AssertUnchanged(before, d);

        rig.Hostile.OnStore = null;
        await Run(d);
        Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task A_manifest_reusing_the_installed_version_id_with_other_content_is_refused_as_a_repair()
    {
        await using var rig = await StartAsync();
        using var d = await DeviceAsync(rig, "dev-5");
        await InstallV2Async(rig, d);
        // A validly signed manifest that reuses version ID of 2.0 with other files (v1's), made in another store with the release key.
        using var evil = new TestStore(keysDirectory: rig.Keys.Directory);
        var forged = evil.Publish("2.0", Releases.V1(), versionId: rig.V2.VersionId);
        var forgedBytes = File.ReadAllBytes(Path.Combine(evil.Root, forged.ManifestPath));
        var forgedSig = File.ReadAllBytes(Path.Combine(evil.Root, forged.ManifestPath + ".sig"));
        rig.Hostile.OnStore = path => path == rig.V2.ManifestPath ? forgedBytes : path == rig.V2.ManifestPath + ".sig" ? forgedSig : null;

        var app = Path.Combine(d.Layout.Client, "bin", "app");
        var bytes = File.ReadAllBytes(app);
        bytes[10] ^= 0x5a;
        File.WriteAllBytes(app, bytes); // local damage: the node orders a repair of version 2.0
        var before = TrustRig.Snapshot(d);
        var r = await Run(d, expectedExit: 1);
        Assert.Contains("but the director-signed directive pins", r.Output);
        Assert.Contains("(same version, other content); refused, nothing installed", r.Output);
        TrustRig.AssertUnchanged(before, d);

        rig.Hostile.OnStore = null;
        await Run(d);
        Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(d));
    }

    [Fact]
    public async Task A_check_in_claiming_another_product_gets_409_and_the_registered_product_stays()
    {
        await using var rig = await StartAsync();
        rig.Store.Publish("0.1", Releases.V1(), product: "other"); // a real product, so the claim reaches the device actor
        using var d = await DeviceAsync(rig, "dev-6");
        await InstallV2Async(rig, d);
        var state = await rig.Node.StateAsync("dev-6");
        Assert.Equal("acme", state.Product);

        // The same device (same id, same credential) claims product 'other' with a real agent.
        var secret = System.Text.Encoding.UTF8.GetString(d.Hidden.ReadRequired(HiddenItem.DeviceCredential));
        using var claimer = new TestDevice(rig.Node.BaseUrl, credential: secret, deviceId: "dev-6", product: "other",
            contentKey: rig.Store.ContentKey.ToBytes(), trustRoot: rig.Keys.RootDocument,
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var r = await Run(claimer, expectedExit: 1);
        Assert.Contains("HTTP 409 product_mismatch: Device 'dev-6' is registered for product 'acme'; a check-in claiming 'other' is refused", r.Output);
        var after = await rig.Node.StateAsync("dev-6");
        Assert.Equal("acme", after.Product);
        Assert.Equal(state.EventCount, after.EventCount); // nothing journaled

        // Only an operator moves it.
        using var req = new HttpRequestMessage(HttpMethod.Post, "admin/v1/devices/dev-6/product") { Content = JsonContent.Create(new { product = "other" }) };
        req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await rig.Node.Http.SendAsync(req);
        Assert.True(res.IsSuccessStatusCode, await res.Content.ReadAsStringAsync());
        Assert.Equal("other", (await rig.Node.StateAsync("dev-6")).Product);
        await Run(claimer);
    }

    [Fact]
    public async Task An_older_sealed_updater_backup_and_digest_pair_is_refused_and_the_virtual_copy_is_restored_instead()
    {
        using var d = new TestDevice(); // provisioned: updater generation 1
        var backup = d.Layout.Hidden(HiddenItem.UpdaterBackup);
        var digest = d.Layout.Hidden(HiddenItem.UpdaterDigest);
        var (oldBackup, oldDigest) = (File.ReadAllBytes(backup), File.ReadAllBytes(digest));
        var recover = await AgentProcess.RunAsync(["recover", "--from-virtual", "--config", d.Config.SourcePath!]);
        Assert.Equal(0, recover.ExitCode); // generation 2, remembered in the version record
        Assert.Equal(2, d.Hidden.ReadVersionRecord()!.UpdaterGeneration);

        File.WriteAllBytes(backup, oldBackup);
        File.WriteAllBytes(digest, oldDigest);
        var updater = Path.Combine(d.Layout.FreeUpdater, "updater.bin");
        File.WriteAllText(updater, "tampered updater");
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.Contains("hidden updater backup and digest are generation 1, older than the generation 2 this device last sealed", r.Output + r.Error);
        // Not restored from the older backup: the virtual zone's copy (the seed's last resort) is, and it is sealed as generation 3.
        Assert.Contains("updater restored from the virtual zone's plain copy", r.Output);
        Assert.DoesNotContain("restored from the hidden backup", r.Output);
        Assert.Equal("updater program v1", File.ReadAllText(updater));
        Assert.Equal(3, d.Hidden.ReadVersionRecord()!.UpdaterGeneration);
        Assert.Equal(3, UpdaterGeneration.Read(d.Hidden).Generation);
        Assert.NotEqual(oldBackup, File.ReadAllBytes(backup));
    }

    [Fact]
    public async Task A_device_without_valid_directives_reports_itself_stale_and_the_node_shows_it()
    {
        await using var rig = await StartAsync();
        using var d = await DeviceAsync(rig, "dev-7");
        await InstallV2Async(rig, d);
        // The last valid directive was long ago (as if the hostile gateway had stripped them for hours).
        File.WriteAllText(Path.Combine(d.Layout.Work, "trust-state.json"),
            $"{{\"firstSessionUtc\":\"{DateTimeOffset.UtcNow.AddHours(-3):O}\",\"lastValidDirectiveUtc\":\"{DateTimeOffset.UtcNow.AddHours(-2):O}\"}}");
        rig.Hostile.OnCheckIn = async c => (200, OfferV1(rig, (await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization)).Body, keepDirective: false));
        var r = await Run(d, expectedExit: 1);
        Assert.Contains("STALE: no valid director-signed directive for", r.Output);
        Assert.True(rig.Hostile.CheckIns.Last()["stale"]?.GetValue<bool>());
        var status = await AgentProcess.RunAsync(["status", "--config", d.Config.SourcePath!]);
        Assert.Contains("directive STALE", status.Output);
        // The check-ins went through to the node (only the answers were stripped): the node shows the device stale.
        Assert.True((await rig.Node.StateAsync("dev-7")).Stale);

        rig.Hostile.OnCheckIn = null;
        await Run(d); // accepts a valid directive (this check-in still said stale)
        await Run(d); // the next check-in is fresh
        Assert.False((await rig.Node.StateAsync("dev-7")).Stale);
        status = await AgentProcess.RunAsync(["status", "--config", d.Config.SourcePath!]);
        Assert.Contains("fresh", status.Output);
    }
}
