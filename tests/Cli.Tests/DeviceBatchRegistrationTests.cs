using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Tests.Support;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Tests;

/// <summary>
/// <c>orch device register-batch</c> and <c>POST /admin/v1/devices/register-batch</c> against a node of its own (the
/// shared live node's tests count its three devices).
/// </summary>
public sealed class DeviceBatchRegistrationTests(LiveNode node) : IClassFixture<LiveNode>
{
    private string DeviceList(string name, params string[] lines)
    {
        var path = Path.Combine(node.Root, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostBatchAsync(object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/devices/register-batch") { Content = JsonContent.Create(body) };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", LiveNode.OperateToken);
        using var res = await node.Http.SendAsync(req);
        return (res.StatusCode, JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private async Task<bool> ExistsAsync(string deviceId) => (await node.Orch("device", "show", deviceId)).ExitCode == ExitCodes.Success;

    [Fact]
    public async Task Registers_every_listed_device_and_a_repeat_changes_nothing()
    {
        var file = DeviceList("batch.txt", "# bench fleet", "batch-1", "", "  batch-2  ", "batch-3");
        var run = await node.Orch("device", "register-batch", file, "--product", "acme", "--tags", "eu,bulk", "--json");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal((3, 3, 0), (run.Json.GetProperty("devices").GetInt32(), run.Json.GetProperty("registered").GetInt32(), run.Json.GetProperty("unchanged").GetInt32()));
        foreach (var id in new[] { "batch-1", "batch-2", "batch-3" })
        {
            var show = await node.Orch("device", "show", id, "--json");
            Assert.True(show.ExitCode == 0, show.Error);
            Assert.Equal("acme", show.Json.GetProperty("product").GetString());
            Assert.Equal(["eu", "bulk"], show.Json.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        }
        var again = await node.Orch("device", "register-batch", file, "--product", "acme", "--tags", "eu,bulk");
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Contains("3 device(s) for acme with tags eu,bulk: 0 registered, 3 already so.", again.Out);
        var history = await node.Orch("device", "history", "batch-2", "--json");
        Assert.Single(history.Json.GetProperty("events").EnumerateArray()); // the repeat wrote nothing

        var retag = await node.Orch("device", "register-batch", DeviceList("one.txt", "batch-1"), "--product", "acme", "--tags", "us", "--json");
        Assert.Equal(1, retag.Json.GetProperty("registered").GetInt32());
    }

    [Fact]
    public async Task A_device_of_another_product_refuses_the_whole_batch()
    {
        Assert.Equal(0, (await node.Orch("device", "register-batch", DeviceList("other.txt", "mixed-1"), "--product", "other")).ExitCode);
        var file = DeviceList("mixed.txt", "mixed-2", "mixed-1", "mixed-3");
        var run = await node.Orch("device", "register-batch", file, "--product", "acme", "--json");
        Assert.Equal(ExitCodes.InvalidInput, run.ExitCode);
        Assert.Equal("invalid_registration", run.Json.GetProperty("error").GetString());
        Assert.Contains("devices[1] ('mixed-1') runs product 'other', not 'acme'", run.Error + run.Out);
        Assert.False(await ExistsAsync("mixed-2"));
        Assert.False(await ExistsAsync("mixed-3"));
    }

    [Fact]
    public async Task Bad_entries_are_named_and_nothing_is_registered()
    {
        var badTag = await PostBatchAsync(new
        {
            devices = new object[]
            {
                new { deviceId = "bad-1", product = "acme", tags = new[] { "ok" } },
                new { deviceId = "bad-2", product = "acme", tags = new[] { "has space" } },
            },
        });
        Assert.Equal(HttpStatusCode.BadRequest, badTag.Status);
        Assert.Contains("devices[1] ('bad-2')", badTag.Body.GetProperty("message").GetString());
        Assert.Contains("Invalid tag 'has space'", badTag.Body.GetProperty("message").GetString());

        var dup = await PostBatchAsync(new { devices = new[] { new { deviceId = "bad-1", product = "acme" }, new { deviceId = "bad-1", product = "acme" } } });
        Assert.Equal(HttpStatusCode.BadRequest, dup.Status);
        Assert.Contains("devices[1] repeats device 'bad-1' of devices[0]", dup.Body.GetProperty("message").GetString());

        var badId = await PostBatchAsync(new { devices = new[] { new { deviceId = "bad-1", product = "acme" }, new { deviceId = "-x y", product = "acme" } } });
        Assert.Equal(HttpStatusCode.BadRequest, badId.Status);
        Assert.Contains("devices[1] ('-x y')", badId.Body.GetProperty("message").GetString());

        var noProduct = await PostBatchAsync(new { devices = new[] { new { deviceId = "bad-1", product = "" } } });
        Assert.Equal(HttpStatusCode.BadRequest, noProduct.Status);

        var empty = await PostBatchAsync(new { devices = Array.Empty<object>() });
        Assert.Equal(HttpStatusCode.BadRequest, empty.Status);
        Assert.Contains("non-empty \"devices\" array", empty.Body.GetProperty("message").GetString());

        var tooMany = await PostBatchAsync(new
        {
            devices = Enumerable.Range(0, DeviceBatchRegistrationRequest.MaxDevices + 1).Select(i => new { deviceId = $"many-{i}", product = "acme" }).ToArray(),
        });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.Status);
        Assert.Contains("the limit is 10000", tooMany.Body.GetProperty("message").GetString());

        Assert.False(await ExistsAsync("bad-1"));
        Assert.False(await ExistsAsync("many-0"));

        // The CLI checks the file before sending anything, naming the line.
        var cli = await node.Orch("device", "register-batch", DeviceList("typo.txt", "bad-3", "not valid"), "--product", "acme");
        Assert.Equal(ExitCodes.Usage, cli.ExitCode);
        Assert.Contains("typo.txt:2: 'not valid' is not a valid device id", cli.Error);
        Assert.False(await ExistsAsync("bad-3"));
        var readOnly = await node.Orch("device", "register-batch", DeviceList("ro.txt", "bad-4"), "--product", "acme", "--token", LiveNode.ReadToken);
        Assert.Equal(ExitCodes.Unauthorized, readOnly.ExitCode);
        Assert.False(await ExistsAsync("bad-4"));
    }
}
