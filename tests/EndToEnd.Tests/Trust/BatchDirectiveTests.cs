using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.DeviceAgent.Zones;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Trust;

/// <summary>
/// Batch-signed directives with real processes (docs/protocol.md "Directive"): real agents, which advertise
/// <c>batchDirectives</c>, against a real node whose answers pass through a scripted gateway. Concurrent check-ins share
/// one director signature over a Merkle root, and the agents act on them; a gateway that moves proofs or signatures
/// between answers, or alters a leaf, is refused with its reason and nothing changes on the device.
/// </summary>
public sealed class BatchDirectiveTests(ITestOutputHelper output)
{
    private static Task<TrustRig> StartAsync() => TrustRig.StartAsync();

    private static Task<TestDevice> DeviceAsync(TrustRig rig, string id) => rig.DeviceAsync(id, attempts: 1);

    private async Task<AgentProcess.Result> Run(TestDevice d, int expectedExit = 0)
    {
        var r = await AgentProcess.RunAsync(["run", "--config", d.Config.SourcePath!, "--no-client"], timeout: TimeSpan.FromSeconds(120));
        output.WriteLine($"--- {d.Config.DeviceId}: {r.Output}{r.Error}");
        Assert.Equal(expectedExit, r.ExitCode);
        return r;
    }

    private static JsonObject Envelope(string answer) => (JsonObject)JsonNode.Parse(((JsonObject)JsonNode.Parse(answer)!)["directive"]!.GetValue<string>())!;

    private static string WithEnvelope(string answer, JsonObject envelope)
    {
        var o = (JsonObject)JsonNode.Parse(answer)!;
        o["directive"] = envelope.ToJsonString();
        return o.ToJsonString();
    }

    // Holds check-ins until `count` have arrived, then lets them go together (a burst the node answers at once).
    private sealed class Barrier(int count)
    {
        private int _arrived;
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Released => _all.Task;

        public async Task ArriveAsync()
        {
            if (Interlocked.Increment(ref _arrived) >= count) _all.TrySetResult();
            await _all.Task.WaitAsync(TimeSpan.FromSeconds(90));
        }
    }

    private static async Task<(double Signatures, double Directives)> DirectorMetricsAsync(NodeUnderTest node)
    {
        var text = await node.Http.GetStringAsync("metrics");
        return (PrometheusText.Sum(text, "orch_director_batch_signatures_total"), PrometheusText.Sum(text, "orch_director_batched_directives_total"));
    }

    // A device's check-in sent by the test itself, as an agent that reads batch-signed directives would; the answer body.
    private static async Task<string> CheckInAsync(HttpClient http, string deviceId, string secret)
    {
        var path = $"v1/devices/{deviceId}/check-in";
        var body = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["product"] = "acme", ["installedVersionId"] = 0, ["inventoryDigest"] = "empty", ["agentVersion"] = "test",
            ["nonce"] = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), ["batchDirectives"] = true,
        }.ToJsonString());
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("Authorization", Orchestrator.TestSupport.DeviceSigning.Header(deviceId, secret, "POST", "/" + path, body,
            Orchestrator.TestSupport.DeviceSigning.NextSequence(), DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return text;
    }

    [Fact]
    public async Task Concurrent_real_agents_get_batch_signed_directives_share_a_root_and_act_on_them()
    {
        await using var rig = await StartAsync();
        const int agents = 6;
        var devices = new List<TestDevice>();
        for (var i = 0; i < agents; i++) devices.Add(await DeviceAsync(rig, $"batch-{i}"));
        // Half are told to install v1, half have nothing to do.
        for (var i = 0; i < agents / 2; i++) await rig.Node.AssignAsync($"batch-{i}", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        // Other devices check in from the test while the agents' check-ins are let go, so the director is busy signing
        // and directives wait for the next batch, as under a fleet's load.
        var others = new List<(string Id, string Secret)>();
        for (var i = 0; i < 16; i++) others.Add(($"load-{i}", await rig.Node.ProvisionAsync($"load-{i}")));
        var before = await DirectorMetricsAsync(rig.Node);

        var loadAnswers = new System.Collections.Concurrent.ConcurrentBag<string>();
        var barrier = new Barrier(agents);
        var agentAnswers = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        rig.Hostile.OnCheckIn = async c =>
        {
            Assert.True(c.Body["batchDirectives"]?.GetValue<bool>(), $"the agent's check-in does not advertise batchDirectives: {c.Body.ToJsonString()}");
            await barrier.ArriveAsync();
            // Let the agents' check-ins go once the other devices keep the director busy.
            for (var wait = 0; loadAnswers.Count < 100 && wait < 600; wait++) await Task.Delay(50);
            var answer = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            agentAnswers.TryAdd(c.DeviceId, answer.Body);
            return answer;
        };
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            await barrier.Released;
            await Task.WhenAll(others.Select(o => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested) loadAnswers.Add(await CheckInAsync(rig.Node.Http, o.Id, o.Secret));
            })));
        });
        var runs = await Task.WhenAll(devices.Select(d => Run(d)));
        stop.Cancel();
        await load;

        // Every agent acted on its batch-signed directive: v1 installed, or nothing to do.
        for (var i = 0; i < agents; i++)
        {
            if (i < agents / 2)
            {
                Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(devices[i]));
                Assert.Equal(rig.V1.VersionId, devices[i].Hidden.ReadVersionRecord()!.VersionId);
            }
            else
            {
                Assert.Equal(0, devices[i].Hidden.ReadVersionRecord()?.VersionId ?? 0);
            }
            Assert.DoesNotContain("refused", runs[i].Output);
        }
        Assert.Equal(agents, agentAnswers.Count);
        var agentBatches = agentAnswers.ToDictionary(a => a.Key, a => Envelope(a.Value)["batch"]!.AsObject());
        var all = agentAnswers.Values.Concat(loadAnswers).Select(a => Envelope(a)["batch"]!.AsObject()).ToList();
        var byRoot = all.GroupBy(b => b["root"]!.GetValue<string>()).ToList();
        output.WriteLine($"agent batch sizes: {string.Join(", ", agentBatches.Select(b => $"{b.Key}={b.Value["size"]}"))}; " +
                         $"{all.Count} answers under {byRoot.Count} roots, largest {byRoot.Max(g => g.Count())}");
        // One root covered several of the directives answered in the burst (whether an agent's own directive waited for
        // a batch depends on the timing, so the agents are asserted to verify and act on whichever they got).
        Assert.Contains(byRoot, g => g.Count() >= 2);
        Assert.All(agentBatches.Values, b => Assert.InRange(b["size"]!.GetValue<int>(), 1, 64));
        // The node says so too: more directives than signatures since the agents started.
        // /metrics answers a scrape from its cache for 300 ms, so the first read after the burst may be the one before it.
        var after = await FleetSteps.UntilAsync("the node's metrics count the burst's directives",
            () => DirectorMetricsAsync(rig.Node), m => m.Directives > before.Directives);
        Assert.True(after.Directives - before.Directives > after.Signatures - before.Signatures,
            $"{after.Directives - before.Directives} directives under {after.Signatures - before.Signatures} signatures");
        foreach (var d in devices) d.Dispose();
    }

    [Fact]
    public async Task Swapped_proofs_other_batch_signatures_altered_leaves_and_bad_paths_are_refused_and_change_nothing()
    {
        await using var rig = await StartAsync();
        using var a = await DeviceAsync(rig, "dev-a");
        using var b = await DeviceAsync(rig, "dev-b");
        string? earlier = null;
        rig.Hostile.OnCheckIn = async c =>
        {
            var answer = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            earlier ??= answer.Body;
            return answer;
        };
        await rig.Node.AssignAsync("dev-a", "acme", rig.V2.Version, rig.V2.VersionId, rig.V2.ManifestPath);
        await Run(a);
        Assert.Equal(rig.V2.InventoryDigest, Releases.ClientDigest(a));
        Assert.NotNull(Envelope(earlier!)["batch"]);
        await Run(b); // nothing assigned yet: nothing to do
        // dev-a is up to date (its answers say none); dev-b is now told to install v1: a tampered answer accepted would show on disk.
        await rig.Node.AssignAsync("dev-b", "acme", rig.V1.Version, rig.V1.VersionId, rig.V1.ManifestPath);
        var beforeA = TrustRig.Snapshot(a);
        var beforeB = TrustRig.Snapshot(b);

        // 1. The two devices' answers, signed in the same burst, with their proofs and signatures swapped.
        var barrier = new Barrier(2);
        var answers = new System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource<string>>(
            new[] { "dev-a", "dev-b" }.ToDictionary(id => id, _ => new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously)));
        rig.Hostile.OnCheckIn = async c =>
        {
            await barrier.ArriveAsync();
            var own = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
            answers[c.DeviceId].TrySetResult(own.Body);
            var theirs = Envelope(await answers[c.DeviceId == "dev-a" ? "dev-b" : "dev-a"].Task.WaitAsync(TimeSpan.FromSeconds(60)));
            var envelope = Envelope(own.Body);
            envelope["batch"] = theirs["batch"]!.DeepClone();
            envelope["signatures"] = theirs["signatures"]!.DeepClone();
            return (200, WithEnvelope(own.Body, envelope));
        };
        var swapped = await Task.WhenAll(Run(a, expectedExit: 1), Run(b, expectedExit: 1));
        foreach (var r in swapped)
            Assert.Matches(@"failed at verify: directive refused: directive: the payload and its inclusion path \(leaf \d+ of \d+\) do not lead to the signed batch root", r.Output);
        TrustRig.AssertUnchanged(beforeA, a);
        TrustRig.AssertUnchanged(beforeB, b);

        async Task AttackAsync(Func<JsonObject, JsonObject> tamper, string refusal)
        {
            rig.Hostile.OnCheckIn = async c =>
            {
                var own = await rig.Hostile.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
                return (200, WithEnvelope(own.Body, tamper(Envelope(own.Body))));
            };
            var r = await Run(b, expectedExit: 1);
            // The agent's log (its journal under systemd) names the refusal; nothing on disk changed.
            Assert.Contains("failed at verify: directive refused: directive: ", r.Output);
            Assert.Contains(refusal, r.Output);
            TrustRig.AssertUnchanged(beforeB, b);
        }

        // 2. The root signature of another batch (an earlier check-in's).
        await AttackAsync(e => { e["signatures"] = Envelope(earlier!)["signatures"]!.DeepClone(); return e; },
            "the batch root carries 0 valid signature(s) of the 'director' role of root version 1; 1 required");
        // 3. The leaf altered: the payload says upgrade to v2 under the node's own proof and signature.
        await AttackAsync(e =>
        {
            var payload = Encoding.UTF8.GetString(Convert.FromBase64String(e["payload"]!.GetValue<string>()));
            var altered = payload.Replace($"\"targetVersionId\":{rig.V1.VersionId}", $"\"targetVersionId\":{rig.V2.VersionId}");
            Assert.NotEqual(payload, altered);
            e["payload"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(altered));
            return e;
        }, "do not lead to the signed batch root (an altered payload, or the path or index of another leaf)");
        // 4. An extended path.
        await AttackAsync(e => { e["batch"]!["path"]!.AsArray().Add(Convert.ToBase64String(new byte[32])); return e; }, "(truncated or extended path)");
        // 5. An index outside the batch.
        await AttackAsync(e => { e["batch"]!["index"] = e["batch"]!["size"]!.GetValue<int>(); return e; }, "(wrong index)");

        // 6. An agent that reads batch-signed directives against a node that signs singly (the field removed on the way,
        // the request signed again as the device): the single-signed directive is honoured, and v1 installs.
        var secret = Encoding.UTF8.GetString(b.Hidden.ReadRequired(HiddenItem.DeviceCredential));
        string? single = null;
        rig.Hostile.OnCheckIn = async c =>
        {
            c.Body.Remove("batchDirectives");
            var own = await rig.Hostile.ForwardChangedAsync(c, secret);
            single ??= own.Body;
            return own;
        };
        await Run(b);
        Assert.Null(Envelope(single!)["batch"]);
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(b));

        // Through an honest line dev-a is fine and still on v2.
        rig.Hostile.OnCheckIn = null;
        var honest = await Run(a);
        Assert.Contains($"up to date at version ID {rig.V2.VersionId}", honest.Output);
        TrustRig.AssertUnchanged(beforeA, a);
    }
}
