using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Http;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Faults;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>
/// A real agent against a node whose own admission (<c>Admission:*</c>) refuses check-ins: the agent waits out every
/// 503 <c>node_busy</c> for the Retry-After the node sent and then gets through; and under a scripted storm of devices
/// checking in again and again (never waiting), agents on their cadence are answered at once while the stormers get
/// nothing but 503 <c>node_busy</c> with Retry-After.
/// </summary>
public sealed class CheckInStormTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_agent_refused_by_the_nodes_admission_waits_each_retry_after_it_was_sent_and_then_installs()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "1",
            ["Admission:MaxQueuedCheckIns"] = "0",
            ["Admission:RetryAfterSeconds"] = "1",
        });
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        await OrchProcess.OkAsync(node, output, "channel", "set", "acme", "stable", "1.0");
        using var d = await FleetSteps.ProvisionAsync(node, store, "dev-refused", output);
        var holderSecret = await NodeProcessHttp.ProvisionAsync(node.Http, "slot-holder");
        using var seen = new CheckInRecorder();
        AgentProcess.Result agentRun;

        // The only slot is taken by a check-in whose body arrives slowly (fast enough for Kestrel's minimum data rate).
        await using (var holder = await SlotHolder.StartAsync(new Uri(node.BaseUrl), "slot-holder", holderSecret))
        {
            await FleetSteps.UntilAsync("the holder's check-in is inside the gateway", () => Task.FromResult(seen.Started("slot-holder")), n => n == 1);
            var agent = FleetSteps.RunAgentAsync(d, output);
            await FleetSteps.UntilAsync("the node refused the agent's check-in twice", () => Task.FromResult(seen.Of("dev-refused").Count(c => c.Status == 503)),
                n => n >= 2);
            await holder.DisposeAsync();
            agentRun = await agent;
            Assert.Contains("upgrade done: version 1.0", agentRun.Output);
            Assert.DoesNotContain("failed at", agentRun.Output);
        }
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(d));
        Assert.Equal(0, (await node.StateAsync("dev-refused")).FailedAttempts);

        // What the node saw: refusals, each with a Retry-After of 1-2 s, each followed by the agent's next check-in no
        // sooner than that; then one answered check-in.
        var checkIns = seen.Of("dev-refused");
        output.WriteLine(string.Join("\n", checkIns.Select(c => $"{c.Started:HH:mm:ss.fff} -> {c.Ended:HH:mm:ss.fff} {c.Status} retry-after {c.RetryAfter} " +
                                                                 $"connection {c.ConnectionId}{(c.Closed ? " closed" : "")}")));
        Assert.Equal(200, checkIns[^1].Status);
        Assert.True(checkIns.Count >= 3, $"{checkIns.Count} check-ins");
        // The agent read every refusal as node_busy (pacing, not a failed attempt) and said how long it would wait.
        var paced = agentRun.Output.Split('\n').Where(l => l.Contains("paced by the server", StringComparison.Ordinal)).ToList();
        Assert.Equal(checkIns.Count - 1, paced.Count);
        Assert.All(paced, l => Assert.Contains("node_busy", l));
        // Each wait the agent chose lies in the documented window, Retry-After plus [0, 1 s) at random (docs/protocol.md),
        // and the waits differ: the jitter is the agent's own, not a constant.
        var chosen = new List<double>();
        for (var i = 0; i < checkIns.Count - 1; i++)
        {
            var refused = checkIns[i];
            Assert.Equal(503, refused.Status);
            Assert.InRange(refused.RetryAfter!.Value, 1, 2);
            var pause = LoggedPauseSeconds(paced[i]);
            chosen.Add(pause);
            Assert.True(pause >= refused.RetryAfter.Value && pause < refused.RetryAfter.Value + UpdateSession.RetryAfterJitterMilliseconds / 1000.0,
                $"the agent chose {pause:0.###} s for Retry-After {refused.RetryAfter} s: {paced[i]}");
            // Admission:CloseRefusedConnections (default): the node closed the refused connection, and the agent came back
            // on a new one, so a waiting device holds nothing in the node.
            Assert.True(refused.Closed, $"refusal {i + 1} did not say Connection: close");
            Assert.NotEqual(refused.ConnectionId, checkIns[i + 1].ConnectionId);
            var waited = checkIns[i + 1].Started - refused.Ended;
            Assert.True(waited >= TimeSpan.FromSeconds(pause) - TimeSpan.FromMilliseconds(50),
                $"check-in {i + 2} came {waited.TotalSeconds:F2} s after a refusal with Retry-After {refused.RetryAfter} whose chosen wait was {pause:0.###} s");
        }
        Assert.True(chosen.Select(p => p - Math.Floor(p)).Distinct().Count() > 1 || chosen.Count < 2,
            $"the agent's waits carry no jitter: {string.Join(", ", chosen)}");
    }

    [Fact]
    public Task Under_a_storm_of_devices_checking_in_again_and_again_agents_on_their_cadence_are_answered_at_once_and_the_storm_gets_only_node_busy()
        => StormWithAgentsOnTheirCadenceAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "4",
            ["Admission:MaxQueuedCheckIns"] = "8",
            ["Admission:RetryAfterSeconds"] = "1",
            ["Admission:EarlyWithinSeconds"] = "120",
            ["Admission:EarlyMaxInFlight"] = "2",
            // Only the in-flight rule: the thread pool's queue of a loaded test machine must not decide this test.
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
        }, "Admission:EarlyMaxInFlight, 2");

    /// <summary>
    /// The node saturated by the admission's own measure: with <c>Admission:BusyQueueWaitMilliseconds</c> at a microsecond,
    /// any wait of the probe's requests to the node itself (no answer comes back that fast) counts, while the slots and
    /// the in-flight bound are far above what the storm can fill. So every refusal the storm gets is the busy rule's, read
    /// by the probe from the real node's own listener (its readings are on /metrics), and the agents on their cadence (not
    /// early) must still be answered at once.
    /// </summary>
    [Fact]
    public Task While_requests_to_the_node_wait_over_the_busy_threshold_the_storm_gets_node_busy_and_agents_on_their_cadence_are_answered_at_once()
        => StormWithAgentsOnTheirCadenceAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "512",
            ["Admission:MaxQueuedCheckIns"] = "2048",
            ["Admission:RetryAfterSeconds"] = "1",
            ["Admission:EarlyWithinSeconds"] = "120",
            ["Admission:EarlyMaxInFlight"] = "1000000",
            ["Admission:BusyQueueWaitMilliseconds"] = "0.001",
            ["Admission:BusyProbeMilliseconds"] = "1",
            ["Admission:BusyProbe"] = "loopback",
        }, "Admission:BusyQueueWaitMilliseconds, 0.001 ms", preRendered: true, probeReadings: "orch_gateway_loopback_request_wait_milliseconds_count");

    private async Task StormWithAgentsOnTheirCadenceAsync(Dictionary<string, string?> admission, string refusalNames, bool preRendered = false,
        string? probeReadings = null)
    {
        await using var node = await NodeUnderTest.StartAsync(admission);
        using var store = new TestStore(node.StoreRoot);
        store.Publish("1.0", Releases.V1());
        await OrchProcess.OkAsync(node, output, "channel", "set", "acme", "stable", "1.0");
        var agents = new List<TestDevice>();
        for (var i = 0; i < 2; i++) agents.Add(await FleetSteps.ProvisionAsync(node, store, $"dev-cadence-{i}", output));

        // The stormers: each answered once, then checking in again and again without waiting for anything.
        const int stormers = 48;
        var secrets = new string[stormers];
        for (var i = 0; i < stormers; i++)
        {
            secrets[i] = await NodeProcessHttp.ProvisionAsync(node.Http, $"stormer-{i}");
            using var first = await NodeProcessHttp.CheckInAsync(node.Http, $"stormer-{i}", secrets[i], new CheckInRequest("acme", 0, "empty", null, "storm-1.0"));
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }
        using var seen = new CheckInRecorder();
        var statuses = new ConcurrentDictionary<string, int>();
        var messages = new ConcurrentDictionary<string, byte>();
        using var stop = new CancellationTokenSource();
        using var stormHttp = new HttpClient { BaseAddress = new Uri(node.BaseUrl), Timeout = TimeSpan.FromSeconds(30) };
        var storm = Enumerable.Range(0, stormers).Select(i => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var res = await NodeProcessHttp.CheckInAsync(stormHttp, $"stormer-{i}", secrets[i], new CheckInRequest("acme", 0, "empty", null, "storm-1.0"));
                var problem = res.IsSuccessStatusCode ? null : await res.Content.ReadFromJsonAsync<ProblemResponse>(HttpProblems.Json);
                var error = problem?.Error ?? "";
                if (problem is not null) messages.TryAdd(problem.Message, 0);
                var retryAfter = res.Headers.RetryAfter?.Delta is { } ra ? $" retry-after {ra.TotalSeconds:0}" : " no retry-after";
                statuses.AddOrUpdate($"{(int)res.StatusCode} {error}{(res.IsSuccessStatusCode ? "" : retryAfter)}", 1, (_, n) => n + 1);
            }
        })).ToList();
        try
        {
            await FleetSteps.UntilAsync("the storm is refused", () => Task.FromResult(statuses.Where(s => s.Key.StartsWith("503", StringComparison.Ordinal)).Sum(s => s.Value)),
                n => n >= 200);
            foreach (var d in agents)
            {
                var r = await FleetSteps.RunAgentAsync(d, output);
                Assert.Contains("upgrade done: version 1.0", r.Output);
                Assert.DoesNotContain("paced by the server", r.Output);
            }
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(storm);
        }
        output.WriteLine(string.Join("\n", statuses.OrderBy(s => s.Key).Select(s => $"storm {s.Key}: {s.Value}")));
        // The storm beyond the node's capacity got answers or node_busy with a Retry-After of 1-2 s, nothing else.
        Assert.All(statuses.Keys, k => Assert.True(k.StartsWith("200 ", StringComparison.Ordinal) || k is "503 node_busy retry-after 1" or "503 node_busy retry-after 2", k));
        // Each agent's check-in (on its cadence: not answered within EarlyWithinSeconds) was answered, within a bound, once.
        foreach (var d in agents)
        {
            var checkIns = seen.Of(d.Config.DeviceId);
            output.WriteLine(string.Join("\n", checkIns.Select(c => $"{d.Config.DeviceId}: {c.Status} in {(c.Ended - c.Started).TotalMilliseconds:0} ms")));
            var checkIn = Assert.Single(checkIns);
            Assert.Equal(200, checkIn.Status);
            Assert.True(checkIn.Ended - checkIn.Started < TimeSpan.FromSeconds(2), $"{d.Config.DeviceId}'s check-in took {(checkIn.Ended - checkIn.Started).TotalMilliseconds:0} ms");
        }
        // Each refusal was the rule under test's, naming its setting.
        Assert.NotEmpty(messages);
        Assert.All(messages.Keys, m => Assert.Contains(refusalNames, m));
        // The saturated node's refusal is the same bytes for every device (written from a buffer, nothing formatted per
        // refusal): one message per Retry-After it sends (1 or 2 s), none naming a device.
        if (preRendered)
        {
            Assert.InRange(messages.Count, 1, 2);
            Assert.All(messages.Keys, m => Assert.DoesNotContain("stormer-", m));
        }
        if (probeReadings is not null)
        {
            var metrics = await node.Http.GetStringAsync("metrics");
            Assert.True(PrometheusText.Sum(metrics, probeReadings) > 0, $"{probeReadings} on /metrics: the probe took no reading");
        }
        // The node is unharmed: a device that was not early (never answered) checking in now is answered.
        var lateSecret = await NodeProcessHttp.ProvisionAsync(node.Http, "late-1");
        using var after = await NodeProcessHttp.CheckInAsync(node.Http, "late-1", lateSecret, new CheckInRequest("acme", 0, "empty", null, "storm-1.0"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Connections_beyond_admission_max_connections_are_closed_unanswered_and_the_node_answers_again_once_they_are_gone()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Admission:MaxConnections"] = "16" });
        var uri = new Uri(node.BaseUrl);
        var held = new List<TcpClient>();
        try
        {
            // Idle connections, each proven accepted by an answered request on it, until one is closed without an answer:
            // the seventeenth open connection at the latest (the test's own client may hold some of the sixteen).
            var refused = false;
            for (var i = 0; i < 17 && !refused; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, uri.Port);
                held.Add(c);
                var answer = await ExchangeAsync(c, "GET /health/live HTTP/1.1\r\nHost: node\r\n\r\n");
                if (answer == "") refused = true;
                else Assert.StartsWith("HTTP/1.1 200", answer);
            }
            Assert.True(refused, "17 connections were answered with Admission:MaxConnections 16");
            output.WriteLine($"connection {held.Count} closed unanswered");
            Assert.True(held.Count >= 8, $"only {held.Count - 1} connections accepted");
            Assert.StartsWith("HTTP/1.1 200", await ExchangeAsync(held[0], "GET /health/live HTTP/1.1\r\nHost: node\r\n\r\n"));
        }
        finally
        {
            foreach (var c in held) c.Dispose();
        }
        await FleetSteps.UntilAsync("a new connection is answered", async () =>
        {
            using var c = new TcpClient();
            await c.ConnectAsync(IPAddress.Loopback, uri.Port);
            return await ExchangeAsync(c, "GET /health/live HTTP/1.1\r\nHost: node\r\n\r\n");
        }, s => s.StartsWith("HTTP/1.1 200", StringComparison.Ordinal));
    }

    /// <summary>
    /// A real node with <c>Admission:MaxUnreadConnections</c> 4: four connections that send nothing take every place, a
    /// request on a fifth connection waits unaccepted (the kernel holds it) until one of the four sends its request and
    /// the node reads it; then both are answered.
    /// </summary>
    [Fact]
    public async Task While_admission_max_unread_connections_have_sent_nothing_a_new_connection_waits_until_one_is_read()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxUnreadConnections"] = "4",
            ["Admission:UnreadConnectionMilliseconds"] = "20000",
        });
        var uri = new Uri(node.BaseUrl);
        var silent = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(uri.Host, uri.Port);
                silent.Add(c);
            }
            await Task.Delay(500); // accepted by the node, nothing to read
            using var waiting = new TcpClient();
            await waiting.ConnectAsync(uri.Host, uri.Port); // completed by the kernel: the node has not accepted it
            const string request = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            var answer = ExchangeAsync(waiting, request);
            await Task.Delay(1500);
            Assert.False(answer.IsCompleted, "the node accepted and answered a connection while four unread ones held every place");

            // One silent connection speaks: the node reads it, which frees a place, and the waiting one is accepted too.
            Assert.StartsWith("HTTP/1.1 200", await ExchangeAsync(silent[0], request));
            Assert.StartsWith("HTTP/1.1 200", await answer.WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            foreach (var c in silent) c.Dispose();
        }
        var metrics = await node.Http.GetStringAsync("metrics");
        Assert.True(PrometheusText.Sum(metrics, "orch_node_accept_unread_waits_total") >= 1, "no accept waited for an unread connection (orch_node_accept_unread_waits_total)");
    }

    /// <summary>
    /// Connections the node has not accepted yet are devices it cannot see, any of them on its cadence. A real node with
    /// <c>Admission:BusyListenQueue</c> 4 (the busy probe off, so this rule alone decides): two silent connections take
    /// every unread place (<c>Admission:MaxUnreadConnections</c> 2), so six more wait in the kernel's listen backlog; a
    /// device answered a moment ago, checking in again on the connection the node already has, is refused 503
    /// <c>node_busy</c> naming the rule, with Retry-After, and a real agent that connects meanwhile waits in the backlog
    /// too. Once the silent connections end, the node accepts what waited: the agent installs without being paced, and the
    /// early device is answered again.
    /// </summary>
    [Fact]
    public async Task While_connections_wait_in_the_listen_backlog_early_devices_get_node_busy_and_an_agent_waiting_there_is_answered_once_accepted()
    {
        await using var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxUnreadConnections"] = "2",
            ["Admission:UnreadConnectionMilliseconds"] = "60000",
            ["Admission:BusyListenQueue"] = "4",
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
            ["Admission:EarlyWithinSeconds"] = "120",
            ["Admission:RetryAfterSeconds"] = "1",
        });
        using var store = new TestStore(node.StoreRoot);
        store.Publish("1.0", Releases.V1());
        await OrchProcess.OkAsync(node, output, "channel", "set", "acme", "stable", "1.0");
        var agent = await FleetSteps.ProvisionAsync(node, store, "dev-cadence-backlog", output);
        var early = new CheckInRequest("acme", 0, "empty", null, "storm-1.0");
        var secret = await NodeProcessHttp.ProvisionAsync(node.Http, "early-1");
        // Its own client: the connection the node accepted for its first check-in carries the second.
        using var earlyHttp = new HttpClient { BaseAddress = new Uri(node.BaseUrl), Timeout = TimeSpan.FromSeconds(30) };
        using (var first = await NodeProcessHttp.CheckInAsync(earlyHttp, "early-1", secret, early))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        var uri = new Uri(node.BaseUrl);
        var held = new List<TcpClient>();
        Task<AgentProcess.Result>? run = null;
        try
        {
            for (var i = 0; i < 8; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(uri.Host, uri.Port); // completed by the kernel, accepted by the node or not
                held.Add(c);
            }
            await FleetSteps.UntilAsync("six connections wait in the listen backlog", () => ListenQueueAsync(uri.Port), n => n >= 6);
            run = FleetSteps.RunAgentAsync(agent, output);

            using (var refused = await NodeProcessHttp.CheckInAsync(earlyHttp, "early-1", secret, early))
            {
                var body = await refused.Content.ReadAsStringAsync();
                Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)refused.StatusCode}: {body}");
                Assert.Contains("node_busy", body);
                Assert.Contains("Admission:BusyListenQueue, 4", body);
                Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            }
            Assert.False(run.IsCompleted, "the agent was answered while its connection waited in the backlog");
        }
        finally
        {
            foreach (var c in held) c.Dispose();
        }
        var result = await run!;
        Assert.Contains("upgrade done: version 1.0", result.Output);
        Assert.DoesNotContain("paced by the server", result.Output);
        await FleetSteps.UntilAsync("the backlog drained", () => ListenQueueAsync(uri.Port), n => n == 0);
        using (var again = await NodeProcessHttp.CheckInAsync(earlyHttp, "early-1", secret, early))
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var metrics = await node.Http.GetStringAsync("metrics");
        Assert.Contains("early-listen-queue", metrics);
    }

    // Connections waiting in the backlog of the socket listening on the port: ss prints it as a listener's Recv-Q.
    private static async Task<int> ListenQueueAsync(int port) => (await ListenerAsync(port)).Queue;

    [Fact]
    public async Task The_node_listens_with_admission_accept_backlog_so_a_storm_of_connects_is_not_dropped_by_the_kernel()
    {
        var somaxconn = int.Parse(File.ReadAllText("/proc/sys/net/core/somaxconn").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await using (var node = await NodeUnderTest.StartAsync(new Dictionary<string, string?> { ["Admission:AcceptBacklog"] = "77" }))
            Assert.Equal(77, await ListenBacklogAsync(new Uri(node.BaseUrl).Port));
        await using (var node = await NodeUnderTest.StartAsync())
            Assert.Equal(Math.Min(4096, somaxconn), await ListenBacklogAsync(new Uri(node.BaseUrl).Port));
    }

    // The kernel's listen backlog of the socket listening on the port: ss prints it as a listener's Send-Q.
    private static async Task<int> ListenBacklogAsync(int port) => (await ListenerAsync(port)).Backlog;

    private static async Task<(int Queue, int Backlog)> ListenerAsync(int port)
    {
        var psi = new ProcessStartInfo("ss", ["-ltnH", $"sport = :{port}"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var ss = Process.Start(psi) ?? throw new InvalidOperationException("ss (iproute2) did not start: apt-get install iproute2");
        var listing = await ss.StandardOutput.ReadToEndAsync();
        await ss.WaitForExitAsync();
        var line = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()
                   ?? throw new InvalidOperationException($"no listener on port {port}: '{listing}'");
        // State Recv-Q Send-Q Local:Port Peer:Port
        var columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (int.Parse(columns[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(columns[2], System.Globalization.CultureInfo.InvariantCulture));
    }

    // The wait an agent's "paced by the server" line says it chose: "checking in again in 1.234s".
    private static double LoggedPauseSeconds(string line)
    {
        var at = line.LastIndexOf("checking in again in ", StringComparison.Ordinal);
        Assert.True(at >= 0, line);
        var text = line[(at + "checking in again in ".Length)..].TrimEnd();
        return double.Parse(text[..text.IndexOf('s', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
    }

    // Sends a request on the connection and reads until the answer's headers and its (Content-Length) body are in, or the
    // server closes the connection; "" when it closed without a byte.
    private static async Task<string> ExchangeAsync(TcpClient client, string request)
    {
        var stream = client.GetStream();
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        }
        catch (IOException)
        {
            return "";
        }
        var text = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var s = text.ToString();
                var end = s.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end >= 0)
                {
                    var length = s[..end].Split("\r\n").Select(h => h.Split(':', 2)).Where(h => h.Length == 2 && h[0].Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                        .Select(h => int.Parse(h[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                    if (s.Length >= end + 4 + length) return s;
                }
                var n = await stream.ReadAsync(buffer, timeout.Token);
                if (n == 0) return text.ToString();
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
        }
        catch (IOException)
        {
            return text.ToString();
        }
    }

    /// <summary>
    /// One check-in whose headers are sent at once and whose body trickles in (above Kestrel's minimum data rate), so it
    /// holds a check-in slot of the gateway until disposed.
    /// </summary>
    private sealed class SlotHolder : IAsyncDisposable
    {
        private readonly TcpClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _trickle;

        private SlotHolder(TcpClient client, NetworkStream stream, byte[] body)
        {
            _client = client;
            _trickle = Task.Run(async () =>
            {
                try
                {
                    for (var at = 0; at < body.Length - 1 && !_stop.IsCancellationRequested; at += 64)
                    {
                        await stream.WriteAsync(body.AsMemory(at, Math.Min(64, body.Length - 1 - at)), _stop.Token);
                        await Task.Delay(100, _stop.Token);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException) { }
            });
        }

        public static async Task<SlotHolder> StartAsync(Uri node, string deviceId, string secret)
        {
            var body = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new CheckInRequest("acme", 0, "empty", null, "holder-1.0"), HttpProblems.Json)
                .PadRight(40_000));
            var path = $"/v1/devices/{deviceId}/check-in";
            var auth = DeviceSigning.Header(deviceId, secret, "POST", path, body, DeviceSigning.NextSequence(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, node.Port);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST {path} HTTP/1.1\r\nHost: {node.Authority}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"));
            return new SlotHolder(client, stream, body);
        }

        public async ValueTask DisposeAsync()
        {
            if (_stop.IsCancellationRequested) return;
            _stop.Cancel();
            await _trickle;
            _client.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>
    /// Every check-in this process's nodes receive, as ASP.NET Core's hosting diagnostics report them: when it came in,
    /// when it was answered, its status and Retry-After (the body, and so the problem code, is the agent's to report).
    /// </summary>
    private sealed class CheckInRecorder : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>, IDisposable
    {
        public sealed record CheckIn(string DeviceId, DateTime Started, DateTime Ended, int Status, int? RetryAfter, string ConnectionId, bool Closed);

        private readonly IDisposable _all;
        private readonly List<IDisposable> _subscriptions = [];
        private readonly ConcurrentDictionary<HttpContext, DateTime> _open = new();
        private readonly ConcurrentQueue<CheckIn> _done = new();
        private readonly ConcurrentDictionary<string, int> _started = new();

        public CheckInRecorder() => _all = DiagnosticListener.AllListeners.Subscribe(this);

        public IReadOnlyList<CheckIn> Of(string deviceId) => _done.Where(c => c.DeviceId == deviceId).OrderBy(c => c.Started).ToList();

        public int Started(string deviceId) => _started.GetValueOrDefault(deviceId);

        public void OnNext(DiagnosticListener listener)
        {
            if (listener.Name != "Microsoft.AspNetCore") return;
            lock (_subscriptions) _subscriptions.Add(listener.Subscribe(this, name => name is "Microsoft.AspNetCore.Hosting.BeginRequest" or "Microsoft.AspNetCore.Hosting.EndRequest"));
        }

        public void OnNext(KeyValuePair<string, object?> e)
        {
            if (e.Value?.GetType().GetProperty("httpContext")?.GetValue(e.Value) is not HttpContext ctx) return;
            var path = ctx.Request.Path.Value ?? "";
            if (!path.StartsWith("/v1/devices/", StringComparison.Ordinal) || !path.EndsWith("/check-in", StringComparison.Ordinal)) return;
            var device = path["/v1/devices/".Length..^"/check-in".Length];
            if (e.Key.EndsWith("BeginRequest", StringComparison.Ordinal))
            {
                _open[ctx] = DateTime.UtcNow;
                _started.AddOrUpdate(device, 1, (_, n) => n + 1);
                return;
            }
            if (!_open.TryRemove(ctx, out var started)) return;
            var retryAfter = int.TryParse(ctx.Response.Headers.RetryAfter.ToString(), out var ra) ? ra : (int?)null;
            _done.Enqueue(new CheckIn(device, started, DateTime.UtcNow, ctx.Response.StatusCode, retryAfter, ctx.Connection.Id,
                string.Equals(ctx.Response.Headers.Connection.ToString(), "close", StringComparison.OrdinalIgnoreCase)));
        }

        public void OnCompleted() { }

        public void OnError(Exception error) { }

        public void Dispose()
        {
            _all.Dispose();
            lock (_subscriptions) foreach (var s in _subscriptions) s.Dispose();
        }
    }
}
