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
