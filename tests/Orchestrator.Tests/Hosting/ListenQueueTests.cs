using System.Net;
using System.Net.Sockets;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

/// <summary>
/// The reading of the node's listen backlogs: connections the kernel completed and nobody accepted count, accepted ones
/// stop counting, and a closed listener is forgotten. The rule that reads it, on a real node: CheckInStormTests.
/// </summary>
public sealed class ListenQueueTests
{
    [Fact]
    public async Task Counts_connections_completed_by_the_kernel_until_they_are_accepted_and_forgets_a_closed_listener()
    {
        Assert.True(ListenQueue.Supported, "these tests run on Linux, where a listen backlog's length can be read");
        var queue = new ListenQueue();
        var listener = queue.CreateBoundListenSocket(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        Assert.Equal(0, queue.Waiting);
        // A reading is kept for up to a millisecond: each one below waits longer than that first.
        static void Later() => Thread.Sleep(5);

        var clients = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                clients.Add(c);
            }
            Later();
            Assert.Equal(3, queue.Waiting);
            using (await listener.AcceptAsync())
            {
                Later();
                Assert.Equal(2, queue.Waiting);
            }

            listener.Dispose();
            Later();
            Assert.Equal(0, queue.Waiting);
        }
        finally
        {
            foreach (var c in clients) c.Dispose();
            listener.Dispose();
        }
    }

    /// <summary>
    /// With deferred accepts the kernel completes a connection but keeps it from the listener until its first bytes
    /// arrive: a connection that has sent nothing neither waits in the backlog nor can be accepted, and once it writes it
    /// is there to be accepted, its bytes with it. Without them, the same silent connection waits in the backlog at once.
    /// </summary>
    [Fact]
    public async Task With_deferred_accepts_a_connection_reaches_the_listener_once_its_first_bytes_have_arrived()
    {
        var queue = new ListenQueue(deferAcceptSeconds: 30);
        using var listener = queue.CreateBoundListenSocket(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var silent = new TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, port);
        using var speaking = new TcpClient();
        await speaking.ConnectAsync(IPAddress.Loopback, port);
        Thread.Sleep(200);
        Assert.False(listener.Poll(TimeSpan.Zero, SelectMode.SelectRead), "a connection that has sent nothing was there to accept");
        Assert.Equal(0, queue.Waiting);

        await speaking.GetStream().WriteAsync("GET / HTTP/1.1\r\n"u8.ToArray());
        Assert.True(listener.Poll(TimeSpan.FromSeconds(5), SelectMode.SelectRead), "the connection that wrote was not there to accept");
        Thread.Sleep(5);
        Assert.Equal(1, queue.Waiting);
        using var accepted = await listener.AcceptAsync();
        var first = new byte[64];
        Assert.Equal("GET / HTTP/1.1\r\n", System.Text.Encoding.ASCII.GetString(first, 0, await accepted.ReceiveAsync(first)));
        Assert.False(listener.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead), "the silent connection was there to accept");

        // The same silent connect without deferred accepts: in the backlog at once.
        var plain = new ListenQueue();
        using var plainListener = plain.CreateBoundListenSocket(new IPEndPoint(IPAddress.Loopback, 0));
        plainListener.Listen(16);
        using var plainSilent = new TcpClient();
        await plainSilent.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)plainListener.LocalEndPoint!).Port);
        Assert.True(plainListener.Poll(TimeSpan.FromSeconds(5), SelectMode.SelectRead), "without deferred accepts the silent connection did not wait in the backlog");
    }

    [Fact]
    public void A_listener_that_is_not_tcp_is_not_read()
    {
        var queue = new ListenQueue();
        var path = Path.Combine(Path.GetTempPath(), $"listen-queue-{Guid.NewGuid():N}.sock");
        try
        {
            using var listener = queue.CreateBoundListenSocket(new UnixDomainSocketEndPoint(path));
            listener.Listen(4);
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            client.Connect(new UnixDomainSocketEndPoint(path));
            Thread.Sleep(5);
            Assert.Equal(0, queue.Waiting);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
