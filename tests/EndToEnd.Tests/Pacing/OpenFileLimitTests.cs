using System.Net;
using System.Net.Sockets;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Faults;
using Orchestrator.Node.Hosting;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>
/// A real node process started with fewer open files than <c>Admission:MaxConnections</c> connections need: it says so at
/// start, accepts only what the limit leaves after <see cref="ConnectionLimit.Reserve"/>, and a flood of connections beyond
/// its open-file limit never takes its last descriptors (a node out of descriptors cannot open its database and the
/// runtime may end it), and counts the connections it closed on /metrics instead of logging each one; the accept gate
/// (<see cref="ConnectionAcceptGate"/>) is in front of its listener.
/// </summary>
public sealed class OpenFileLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_flood_of_connections_beyond_the_open_file_limit_is_closed_at_the_lowered_connection_limit_and_the_node_keeps_serving()
    {
        const int openFiles = 1100;
        var limit = ConnectionLimit.For(400_000, openFiles);
        var expected = limit.Effective;
        Assert.Equal(openFiles - 1024, expected);
        using var rig = new NodeProcessRig();
        await rig.StartWithOpenFileLimitAsync(openFiles);
        var node = rig.Node;
        Assert.Contains(node.Output, l => l.Contains($"at most {expected} connections are accepted at once", StringComparison.Ordinal));

        var held = new List<Socket>();
        var mostDescriptors = 0;
        try
        {
            // More connections at once than the node may open files; the kernel completes them all (listen backlog).
            var connects = Enumerable.Range(0, openFiles + 100).Select(async _ =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                lock (held) held.Add(s);
                try { await s.ConnectAsync(IPAddress.Loopback, rig.Port); }
                catch (SocketException) { } // refused once the backlog is full: not a connection the node holds
            }).ToList();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(4))
            {
                mostDescriptors = Math.Max(mostDescriptors, Directory.GetFiles($"/proc/{node.Pid}/fd").Length);
                await Task.Delay(50);
            }
            await Task.WhenAll(connects);
            output.WriteLine($"{held.Count} connections opened; the node held at most {mostDescriptors} descriptors (limit {openFiles}, connection limit {expected})");
            Assert.False(node.HasExited, "the node ended during the flood");
            // The connections beyond the lowered limit were closed as they came: the reserve was never used up (a loaded
            // machine may lag in closing them, so the bound is below the limit, not at the connection limit).
            Assert.InRange(mostDescriptors, expected, openFiles - 200);
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
        await FleetSteps.UntilAsync("the node answers a new connection", async () =>
        {
            try { return (await rig.Http.GetAsync("health/live")).StatusCode; }
            catch (HttpRequestException) { return HttpStatusCode.ServiceUnavailable; }
        }, s => s == HttpStatusCode.OK);
        Assert.False(node.HasExited);
        // Each closed connection is counted on /metrics, not written to the log (thousands a second in a storm).
        var metrics = await rig.Http.GetStringAsync("metrics");
        var rejected = PrometheusText.Sum(metrics, "kestrel_rejected_connections_total");
        Assert.True(rejected > 0, "kestrel_rejected_connections_total is 0 or missing: " +
                                  string.Join(" | ", metrics.Split('\n').Where(l => l.StartsWith("kestrel_", StringComparison.Ordinal)).Take(8)));
        Assert.DoesNotContain(node.Output, l => l.Contains("maximum number of concurrent connections", StringComparison.Ordinal));
        // The accept gate is in front of the listener: it holds this scrape's own connection, and never more than its limit.
        var heldNow = PrometheusText.Sum(metrics, "orch_node_connections_held");
        Assert.InRange(heldNow, 1, limit.AcceptLimit!.Value);
    }
}
