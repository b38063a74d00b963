using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Targeting by attributes with real processes: real agents report the attributes their device maker configured, an
/// operator overrides one with the real orch, saves a group, previews and creates rollouts over attributes, groups and
/// installed versions; what is asserted is what lands on each device's disk and in its journal.
/// </summary>
public sealed class DeviceTargetingTests(ITestOutputHelper output)
{
    private Task<OrchProcess.Result> Orch(NodeUnderTest node, params string[] args) => OrchProcess.OkAsync(node, output, args);

    private Task Agent(TestDevice d) => FleetSteps.RunAgentAsync(d, output);

    private Task<TestDevice> Provision(NodeUnderTest node, TestStore store, string id, string site) =>
        FleetSteps.ProvisionAsync(node, store, id, output, attributes: new Dictionary<string, string> { ["site"] = site, ["hw"] = "rev2" });

    private static Task<T> Until<T>(string what, Func<Task<T>> read, Func<T, bool> done) => FleetSteps.UntilAsync(what, read, done);

    private async Task<List<string>> Listed(NodeUnderTest node, params string[] filter) =>
        [.. (await Orch(node, ["device", "list", "--json", .. filter])).Json.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("deviceId").GetString()!)];

    private static int Count(string history, string text) => history.Split('\n').Count(l => l.Contains(text, StringComparison.Ordinal));

    [Fact]
    public async Task Operators_select_devices_by_reported_and_operator_attributes_groups_and_installed_version()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        var v2 = store.Publish("2.0", Releases.V2());
        await Orch(node, "channel", "set", "acme", "stable", "1.0", "--reason", "first release");
        using var berlin1 = await Provision(node, store, "berlin-1", "berlin");
        using var berlin2 = await Provision(node, store, "berlin-2", "berlin");
        using var paris1 = await Provision(node, store, "paris-1", "paris");
        foreach (var d in new[] { berlin1, berlin2, paris1 }) await Agent(d);
        foreach (var d in new[] { berlin1, berlin2, paris1 }) Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));

        // What the agents reported, as the registry and the device's actor know it.
        var berlin = await Until("registry lists both berlin devices", () => Listed(node, "--attributes", "site=berlin"), l => l.Count == 2);
        Assert.Equal(["berlin-1", "berlin-2"], berlin);
        var state = await node.StateAsync("paris-1");
        Assert.Equal("paris", state.Attributes["site"]);
        Assert.Equal("linux", state.Attributes["os"]);
        Assert.True(state.Attributes.ContainsKey("arch"));

        // An operator moves berlin-2 to munich: it overrides the reported value, which stays visible.
        var attrs = await Orch(node, "device", "attributes", "berlin-2", "--set", "site=munich,ring=canary");
        Assert.Contains("operator (device reports berlin)", attrs.Output);
        Assert.Equal("munich", (await node.StateAsync("berlin-2")).Attributes["site"]);

        // Bad input changes nothing: an invalid key (usage error before sending, and 400 from the API), removing what no operator set (409).
        var before = (await node.StateAsync("berlin-2")).EventCount;
        Assert.Equal(2, (await OrchProcess.RunAsync(node, output, "device", "attributes", "berlin-2", "--set", "Site=x")).ExitCode);
        using (var http = new HttpClient { BaseAddress = new Uri(node.BaseUrl) })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "admin/v1/devices/berlin-2/attributes")
            {
                Content = JsonContent.Create(new { set = new Dictionary<string, string> { ["bad key"] = "x" } }),
            };
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
            using var res = await http.SendAsync(req);
            Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
            Assert.Contains("invalid_attributes", await res.Content.ReadAsStringAsync());
        }
        var notSet = await OrchProcess.RunAsync(node, output, "device", "attributes", "berlin-2", "--remove", "hw");
        Assert.Equal(9, notSet.ExitCode);
        Assert.Contains("the device reports it", notSet.Error);
        Assert.Equal(before, (await node.StateAsync("berlin-2")).EventCount);

        // A saved group over an attribute; the preview of a rollout to it selects berlin-1 only.
        await Orch(node, "group", "save", "berlin", "--attributes", "site=berlin");
        var group = await Until("group berlin matches berlin-1 only", async () => (await Orch(node, "group", "show", "berlin", "--json")).Json,
            g => g.GetProperty("devices").GetInt32() == 1);
        Assert.Equal("berlin-1", group.GetProperty("sample")[0].GetString());
        var preview = (await Orch(node, "rollout", "create", "--product", "acme", "--version", "2.0", "--groups", "berlin", "--dry-run", "--json")).Json;
        Assert.Equal(["berlin-1"], preview.GetProperty("sample").EnumerateArray().Select(e => e.GetString()!).ToArray());
        var unknown = await OrchProcess.RunAsync(node, output, "rollout", "create", "--product", "acme", "--version", "2.0", "--groups", "nowhere");
        Assert.Equal(3, unknown.ExitCode);
        Assert.Contains("group 'nowhere' does not exist", unknown.Error);

        // A rollout over attribute and installed version: only paris-1 (site=paris, running 1.0) upgrades; the others stay on 1.0.
        await Orch(node, "rollout", "create", "--id", "paris-2", "--product", "acme", "--version", "2.0", "--attributes", "site=paris,hw=rev2",
            "--installed", "1.0");
        await Until("paris-1 is assigned 2.0", () => node.StateAsync("paris-1"), s => s.Target?.VersionId == v2.VersionId);
        foreach (var d in new[] { berlin1, berlin2, paris1 }) await Agent(d);
        Assert.Equal(v2.InventoryDigest, Releases.ClientDigest(paris1));
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(berlin1));
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(berlin2));
        Assert.Null((await node.StateAsync("berlin-1")).Target);

        // The journal holds the reported attributes once (a second check-in with the same facts writes nothing) and the operator's change.
        var paris = (await Orch(node, "device", "history", "paris-1")).Output;
        Assert.Equal(1, Count(paris, "reported attributes"));
        Assert.Contains("hw=rev2", paris);
        Assert.Contains("site=paris", paris);
        var b2 = (await Orch(node, "device", "history", "berlin-2")).Output;
        Assert.Contains("operator attributes set to ring=canary, site=munich by", b2);
    }

    [Fact]
    public async Task An_agent_with_an_invalid_attribute_in_its_configuration_refuses_to_start_naming_it()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        using var d = new TestDevice(node.BaseUrl, contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        var path = d.Config.SourcePath!;
        var json = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(path))!;
        json["attributes"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["Site Name"] = "berlin" });
        File.WriteAllText(path, JsonSerializer.Serialize(json));
        var r = await AgentProcess.RunAsync(["run", "--config", path, "--no-client"]);
        output.WriteLine(r.Output + r.Error);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("attribute key 'Site Name' is invalid", r.Output + r.Error);
        Assert.Equal(0, (await node.StateAsync("dev-1")).EventCount);
    }
}
