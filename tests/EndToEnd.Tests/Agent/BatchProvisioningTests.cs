using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Admin;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// <c>orch device provision --count/--prefix</c> and <c>--csv</c> through a real node: the credentials come back once, in
/// batches, and a real agent checks in with one of them; bad input is refused with a specific error and creates nothing.
/// </summary>
public sealed class BatchProvisioningTests(ITestOutputHelper output)
{
    private static Dictionary<string, string> ReadCsv(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("device,secret", lines[0]);
        return lines.Skip(1).Select(l => l.Split(',')).ToDictionary(p => p[0], p => p[1]);
    }

    private static async Task<HttpStatusCode> CredentialStatusAsync(NodeUnderTest node, string deviceId)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"admin/v1/devices/{deviceId}/credential");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await node.Http.SendAsync(req);
        return res.StatusCode;
    }

    [Fact]
    public async Task Devices_provisioned_in_one_batch_by_orch_check_in_with_the_returned_credentials()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var dir = new TempDir();

        // 1,200 devices: more than two database batches, streamed into a file only the operator may read.
        var file = Path.Combine(dir.Path, "lot7.csv");
        var run = await OrchProcess.OkAsync(node, output, "device", "provision", "--count", "1200", "--prefix", "lot7-", "--out", file);
        Assert.Contains("Provisioned 1200 device(s)", run.Output);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var lot = ReadCsv(File.ReadAllText(file));
        Assert.Equal(1200, lot.Count);
        Assert.Equal(Enumerable.Range(1, 1200).Select(i => $"lot7-{i:0000}"), lot.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1200, lot.Values.Distinct().Count());

        // Ids from a CSV (header and extra columns ignored), registered for a product, credentials on stdout.
        var csv = Path.Combine(dir.Path, "site.csv");
        File.WriteAllText(csv, "device,site\nkiosk-a,north\n# spare\nkiosk-b,south\n\nkiosk-c,east\n");
        var fromCsv = await OrchProcess.OkAsync(node, output, "device", "provision", "--csv", csv, "--product", "acme", "--tags", "kiosk");
        var kiosks = ReadCsv(fromCsv.Output);
        Assert.Equal(["kiosk-a", "kiosk-b", "kiosk-c"], kiosks.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("Registered them for acme with tags kiosk: 3 registered", fromCsv.Error);
        var kioskState = await node.StateAsync("kiosk-b");
        Assert.Equal("acme", kioskState.Product);
        Assert.Contains("kiosk", kioskState.Tags);

        // A real agent with a credential from the file checks in, installs what it is assigned, and the journal says so.
        await InstallAssignedAsync(node, store, v1, "lot7-0777", lot["lot7-0777"]);

        // Another device's secret does not sign for this one.
        using var impostor = new TestDevice(node.BaseUrl, credential: lot["lot7-0778"], deviceId: "lot7-0777",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes(),
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var refused = await AgentProcess.RunAsync(["run", "--config", impostor.Config.SourcePath!, "--no-client"]);
        output.WriteLine(refused.Output + refused.Error);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("credential_invalid", refused.Output + refused.Error);
    }

    [Fact]
    public async Task A_fleet_registered_in_bulk_holds_no_live_actors_and_a_device_that_checked_in_keeps_its_own()
    {
        // Idle passivation off (the default): only actors of devices never heard from may stop before the offline timeout.
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Devices:UnheardPassivateAfter"] = "00:00:01", ["Devices:IdlePassivateAfter"] = "00:00:00",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "bulk.csv");
        var run = await OrchProcess.OkAsync(node, output, "device", "provision", "--count", "300", "--prefix", "bulk-", "--out", file,
            "--product", "acme", "--tags", "lot9");
        Assert.Contains("Registered them for acme with tags lot9: 300 registered", run.Output);

        // New devices are registered without their actors; none is live, and what was registered is in the journal.
        await FleetSteps.UntilAsync("no device actor live on the node", node.LiveActorsAsync, live => live == 0);
        var registered = await node.StateAsync("bulk-150");
        Assert.Equal(("acme", DeviceStatus.Unknown), (registered.Product, registered.Status));
        Assert.Contains("lot9", registered.Tags);
        await FleetSteps.UntilAsync("no device actor live on the node", node.LiveActorsAsync, live => live == 0);

        // A real agent checks in with its credential and installs: its device was heard from, so its actor stays.
        var lot = ReadCsv(File.ReadAllText(file));
        await InstallAssignedAsync(node, store, v1, "bulk-007", lot["bulk-007"]);
        // Well past Devices:UnheardPassivateAfter, its actor is still live and counted.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(await node.IsLiveAsync("bulk-007"), "the actor of a device that checked in was passivated as if never heard from");
        Assert.True(await node.MetricAsync("orch_device_actors_live") >= 1);
    }

    // Assigns v1 to the device, runs a real agent with its credential, and checks the install on disk and in the journal.
    private async Task InstallAssignedAsync(NodeUnderTest node, TestStore store, PublishResult v1, string deviceId, string credential)
    {
        await node.AssignAsync(deviceId, "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        using var device = new TestDevice(node.BaseUrl, credential: credential, deviceId: deviceId,
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        var agent = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"]);
        output.WriteLine(agent.Output + agent.Error);
        Assert.Equal(0, agent.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));
        var state = await node.StateAsync(deviceId);
        Assert.Equal(DeviceStatus.Completed, state.Status);
        Assert.Equal(v1.VersionId, state.InstalledVersionId);
    }

    [Fact]
    public async Task Bad_batch_input_is_refused_with_a_specific_error_and_creates_nothing()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var dir = new TempDir();

        async Task RefusedByOrch(string expected, params string[] args)
        {
            var r = await OrchProcess.RunAsync(node, output, ["device", "provision", .. args]);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains(expected, r.Error);
            Assert.DoesNotContain(",", r.Output.Replace("device,secret", ""));
        }

        var dup = Path.Combine(dir.Path, "dup.csv");
        File.WriteAllText(dup, "bad-a\nbad-b\nbad-a\n");
        await RefusedByOrch("dup.csv:3: device 'bad-a' is already listed on line 1", "--csv", dup);
        var badId = Path.Combine(dir.Path, "bad.csv");
        File.WriteAllText(badId, "bad-c\n-not-an-id\n");
        await RefusedByOrch("bad.csv:2: '-not-an-id' is not a valid device id", "--csv", badId);
        await RefusedByOrch("--count '0' is not a whole number in 1..1000000", "--count", "0", "--prefix", "bad-");
        await RefusedByOrch("--count '1000001' is not a whole number in 1..1000000", "--count", "1000001", "--prefix", "bad-");
        await RefusedByOrch("--prefix '-x' gives the id '-x1'", "--count", "5", "--prefix", "-x");
        await RefusedByOrch("--count N and --prefix P go together", "--count", "5");

        // The node checks the same on its own (any client), naming the input.
        async Task RefusedByNode(object body, HttpStatusCode status, string error, string expected)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "admin/v1/devices/provision-batch") { Content = JsonContent.Create(body) };
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
            using var res = await node.Http.SendAsync(req);
            Assert.Equal(status, res.StatusCode);
            var problem = await res.Content.ReadFromJsonAsync<ProblemResponse>(HttpProblems.Json);
            Assert.Equal(error, problem!.Error);
            Assert.Contains(expected, problem.Message);
            Assert.Contains("Nothing was created", problem.Message);
        }
        await RefusedByNode(new { deviceIds = new[] { "bad-a", "bad-b", "bad-a" } }, HttpStatusCode.BadRequest, "invalid_provisioning",
            "deviceIds[2] repeats 'bad-a' of deviceIds[0]");
        await RefusedByNode(new { deviceIds = new[] { "bad-a", "bad b" } }, HttpStatusCode.BadRequest, "invalid_provisioning",
            "deviceIds[1] 'bad b' is not a valid device id");
        await RefusedByNode(new { prefix = "bad-", count = 0 }, HttpStatusCode.BadRequest, "invalid_provisioning", "count 0 is out of range; provision 1..1000000");
        await RefusedByNode(new { prefix = "bad-", count = 1_000_001 }, HttpStatusCode.BadRequest, "invalid_provisioning", "count 1000001 is out of range");
        await RefusedByNode(new { prefix = "bad-", count = 2, deviceIds = new[] { "bad-a" } }, HttpStatusCode.BadRequest, "invalid_provisioning", "not both");
        await RefusedByNode(new { deviceIds = Array.Empty<string>() }, HttpStatusCode.BadRequest, "invalid_provisioning", "\"deviceIds\" is empty");
        await RefusedByNode(new { prefix = new string('p', 127), count = 20 }, HttpStatusCode.BadRequest, "invalid_provisioning", "is not a valid device id");

        // One device of the batch already has a credential: the others are not created either, and its secret still works.
        var secret = await node.ProvisionAsync("bad-b");
        await RefusedByNode(new { deviceIds = new[] { "bad-a", "bad-b", "bad-c" } }, HttpStatusCode.Conflict, "credential_exists",
            "1 of the 3 devices already have a credential (bad-b)");
        File.WriteAllText(Path.Combine(dir.Path, "three.csv"), "bad-a\nbad-b\nbad-c\n");
        var refused = await OrchProcess.RunAsync(node, output, "device", "provision", "--csv", Path.Combine(dir.Path, "three.csv"));
        Assert.Equal(9, refused.ExitCode);
        Assert.Contains("1 of the 3 devices already have a credential (bad-b)", refused.Error);
        Assert.DoesNotContain("bad-a,", refused.Output);

        foreach (var id in new[] { "bad-a", "bad-c", "bad-1", "bad-0", "bad-1000001" })
            Assert.Equal(HttpStatusCode.NotFound, await CredentialStatusAsync(node, id));
        Assert.Equal(HttpStatusCode.OK, await CredentialStatusAsync(node, "bad-b"));
        Assert.NotEmpty(secret);

        // An existing --out file is never written over.
        var existing = Path.Combine(dir.Path, "keep.csv");
        File.WriteAllText(existing, "precious");
        await RefusedByOrch("--out '" + existing + "' exists", "--count", "2", "--prefix", "keep-", "--out", existing);
        Assert.Equal("precious", File.ReadAllText(existing));
        Assert.Equal(HttpStatusCode.NotFound, await CredentialStatusAsync(node, "keep-1"));
    }
}
