using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Faults;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// The gateway looks at a product's index.json at most once per <see cref="InstalledReleaseInspector.IndexRecheckInterval"/>
/// for the versions it lists (issue 22), yet a release published between two check-ins of a real node process is known
/// to the very next check-in that reports it. Seen here through the answer: a device reporting the new version with a
/// damaged tree is told to repair it only when the node knows that version.
/// </summary>
public sealed class PublishBetweenCheckInsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_release_published_between_two_check_ins_is_known_to_every_later_check_in_even_within_the_recheck_interval()
    {
        using var rig = new NodeProcessRig();
        var (store, http) = (rig.Store, rig.Http);
        var v1 = store.Publish("1.0", Releases.V1());
        await rig.StartAsync();
        const string id = "publish-between";
        var secret = await NodeProcessHttp.ProvisionAsync(http, id);
        // The node has just looked at the index (1.0 only).
        Assert.Equal(UpdateAction.None, (await CheckInAsync(http, id, secret, new CheckInRequest("acme", v1.VersionId, v1.InventoryDigest, null, "1.0.0"))).Action);

        var v2 = store.Publish("2.0", Releases.V2());
        var published = Stopwatch.StartNew();
        var damaged = new CheckInRequest("acme", v2.VersionId, "damaged-tree", null, "1.0.0");
        var answers = new List<(TimeSpan SentAfter, UpdateAction Action)>();
        // Check-ins within the recheck interval of the last look at the index and after it: all must know 2.0.
        while (published.Elapsed < InstalledReleaseInspector.IndexRecheckInterval + TimeSpan.FromMilliseconds(500))
        {
            var sent = published.Elapsed;
            answers.Add((sent, (await CheckInAsync(http, id, secret, damaged)).Action));
            await Task.Delay(100);
        }
        foreach (var (sent, action) in answers) output.WriteLine($"sent {sent.TotalMilliseconds:0} ms after the publish: {action}");
        Assert.Contains(answers, a => a.SentAfter < InstalledReleaseInspector.IndexRecheckInterval);
        Assert.All(answers, a => Assert.Equal(UpdateAction.Repair, a.Action));
    }

    [Fact]
    public async Task A_channel_file_published_between_two_check_ins_is_honoured_within_the_recheck_interval()
    {
        using var rig = new NodeProcessRig();
        var (store, http) = (rig.Store, rig.Http);
        var v1 = store.Publish("1.0", Releases.V1());
        await rig.StartAsync();
        const string id = "channel-between";
        var secret = await NodeProcessHttp.ProvisionAsync(http, id);
        var installed = new CheckInRequest("acme", v1.VersionId, v1.InventoryDigest, null, "1.0.0");
        // No channel yet: nothing to do. The node has just looked at the product's channel folder (none).
        Assert.Equal(UpdateAction.None, (await CheckInAsync(http, id, secret, installed)).Action);
        Assert.Equal(UpdateAction.None, (await CheckInAsync(http, id, secret, installed)).Action);

        // What `orch publish --channel stable` writes: the release and channels/acme/stable.json.
        store.Publish("2.0", Releases.V2(), channel: "stable");
        var published = Stopwatch.StartNew();
        var answers = new List<(TimeSpan SentAfter, CheckInResponse Answer)>();
        // Until the interval and a margin have passed and three check-ins were sent after the interval: a check-in slowed
        // by a loaded machine must not leave the claim about late check-ins unexamined.
        while (published.Elapsed < StoreChannelSeeder.RecheckInterval + TimeSpan.FromMilliseconds(700)
               || answers.Count(a => a.SentAfter >= StoreChannelSeeder.RecheckInterval) < 3)
        {
            Assert.True(published.Elapsed < TimeSpan.FromSeconds(60), "three check-ins after the recheck interval did not complete within 60 s");
            var sent = published.Elapsed;
            answers.Add((sent, await CheckInAsync(http, id, secret, installed)));
            await Task.Delay(100);
        }
        foreach (var (sent, answer) in answers) output.WriteLine($"sent {sent.TotalMilliseconds:0} ms after the publish: {answer.Action} {answer.TargetVersion}");
        // Every check-in sent once the recheck interval has passed since the publish is told to install the channel's
        // release, and once one is, every later one is too.
        var late = answers.Where(a => a.SentAfter >= StoreChannelSeeder.RecheckInterval).ToList();
        Assert.NotEmpty(late);
        Assert.All(late, a => Assert.Equal((UpdateAction.Upgrade, "2.0"), (a.Answer.Action, a.Answer.TargetVersion)));
        var first = answers.FindIndex(a => a.Answer.Action == UpdateAction.Upgrade);
        Assert.All(answers.Skip(first), a => Assert.Equal(UpdateAction.Upgrade, a.Answer.Action));
    }

    private static async Task<CheckInResponse> CheckInAsync(HttpClient http, string deviceId, string secret, CheckInRequest body)
    {
        using var res = await NodeProcessHttp.CheckInAsync(http, deviceId, secret, body);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        return (await res.Content.ReadFromJsonAsync<CheckInResponse>(HttpProblems.Json))!;
    }
}
