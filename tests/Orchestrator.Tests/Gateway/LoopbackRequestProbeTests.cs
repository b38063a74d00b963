using System.Net;
using System.Net.Sockets;
using System.Text;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// The loopback probe measures what a request to the node waits for its answer: against a listener that answers after a
/// delay it reads that delay, sustained, sees a request that is not answered yet while it waits, reconnects after the
/// server closes its connection, and reads both answer framings (Content-Length and chunked).
/// </summary>
public sealed class LoopbackRequestProbeTests
{
    // A plain HTTP/1.1 server on loopback that answers every request on a connection after Delay, keeping it alive
    // until CloseAfter answers (0: never).
    private sealed class SlowServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        public volatile int DelayMs;
        public volatile bool Chunked;
        public int CloseAfter;
        public int Requests;
        public int Connections;

        public SlowServer()
        {
            _listener.Start();
            _ = Task.Run(AcceptAsync);
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch (Exception) { return; }
                Interlocked.Increment(ref Connections);
                _ = Task.Run(() => ServeAsync(client));
            }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            var buffer = new byte[4096];
            var have = 0;
            var answered = 0;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    int end;
                    while ((end = buffer.AsSpan(0, have).IndexOf("\r\n\r\n"u8)) < 0)
                    {
                        var n = await stream.ReadAsync(buffer.AsMemory(have), _stop.Token);
                        if (n == 0) return;
                        have += n;
                    }
                    Buffer.BlockCopy(buffer, end + 4, buffer, 0, have - end - 4);
                    have -= end + 4;
                    Interlocked.Increment(ref Requests);
                    await Task.Delay(DelayMs, _stop.Token);
                    var answer = Chunked
                        ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nHealthy\r\n0\r\n\r\n"
                        : "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nHealthy";
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(answer), _stop.Token);
                    if (++answered == CloseAfter) return;
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested) { }
            catch (IOException) { }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
        }
    }

    private static void WaitFor(Func<bool> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting until {what}");
            Thread.Sleep(10);
        }
    }

    [Fact]
    public void The_probe_reads_how_long_the_node_takes_to_answer_and_sees_it_recover()
    {
        using var server = new SlowServer();
        using var probe = new LoopbackRequestProbe(() => server.EndPoint, 1, sustainedProbes: 3);
        WaitFor(() => Volatile.Read(ref server.Requests) >= 5, "the probe sent requests");
        WaitFor(() => probe.SustainedWaitMilliseconds < 20, "a prompt server reads prompt");

        server.DelayMs = 150;
        WaitFor(() => probe.SustainedWaitMilliseconds >= 120, "every reading waited for the slow answers");
        Assert.True(probe.CurrentWaitMilliseconds >= 120);

        server.DelayMs = 0;
        WaitFor(() => probe.SustainedWaitMilliseconds < 20 && probe.CurrentWaitMilliseconds < 20, "the answers are prompt again");
        // One connection, kept alive, for every reading.
        Assert.Equal(1, Volatile.Read(ref server.Connections));
    }

    [Fact]
    public void A_request_not_answered_yet_reads_as_the_time_it_has_waited()
    {
        using var server = new SlowServer();
        using var probe = new LoopbackRequestProbe(() => server.EndPoint, 1, sustainedProbes: 1);
        WaitFor(() => Volatile.Read(ref server.Requests) >= 3, "the probe sent requests");
        server.DelayMs = 5_000;
        var sent = Volatile.Read(ref server.Requests);
        WaitFor(() => probe.CurrentWaitMilliseconds >= 1_000, "the unanswered request counts while it waits", 10);
        // Still the same request: the reading is the wait in progress, not a completed one.
        Assert.True(Volatile.Read(ref server.Requests) <= sent + 1);
    }

    [Fact]
    public void The_probe_connects_again_after_the_server_closes_and_reads_chunked_answers()
    {
        using var server = new SlowServer { CloseAfter = 2, Chunked = true, DelayMs = 30 };
        using var probe = new LoopbackRequestProbe(() => server.EndPoint, 1, sustainedProbes: 2);
        WaitFor(() => Volatile.Read(ref server.Connections) >= 3, "the probe reconnected after each close");
        WaitFor(() => probe.SustainedWaitMilliseconds >= 25, "chunked answers are read as answers");
    }

    [Fact]
    public void Without_a_target_there_are_no_readings()
    {
        using var probe = new LoopbackRequestProbe(() => null, 1, sustainedProbes: 1);
        Thread.Sleep(100);
        Assert.Equal(0, probe.SustainedWaitMilliseconds);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5000", "127.0.0.1:5000")]
    [InlineData("http://0.0.0.0:5001", "127.0.0.1:5001")]
    [InlineData("http://[::]:5002", "[::1]:5002")]
    [InlineData("http://+:5003", "127.0.0.1:5003")]
    [InlineData("http://*:5004", "127.0.0.1:5004")]
    [InlineData("http://localhost:5005", "127.0.0.1:5005")]
    [InlineData("https://127.0.0.1:5006", null)]
    [InlineData("http://node.example:5007", null)]
    public void The_target_is_the_loopback_of_the_first_plain_http_address(string address, string? expected) =>
        Assert.Equal(expected, LoopbackRequestProbe.LoopbackOf(ServerAddresses.PlainHttp([address]))?.ToString());

    [Fact]
    public void A_tls_address_is_skipped_for_a_later_plain_one() =>
        Assert.Equal("127.0.0.1:8080", LoopbackRequestProbe.LoopbackOf(ServerAddresses.PlainHttp(["https://0.0.0.0:8443", "http://0.0.0.0:8080"]))?.ToString());
}
