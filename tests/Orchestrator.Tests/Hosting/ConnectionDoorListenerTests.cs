using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

/// <summary>
/// The listener whose own thread accepts (real loopback sockets): while its door refuses, a refused connection gets the
/// door's bytes and an orderly close and never reaches Kestrel; every other connection reaches Kestrel with its bytes
/// unread; the accept gate's slots bound it as they bound Kestrel's own listener; unbinding ends its blocking accept.
/// The real node under a storm: CheckInStormTests.
/// </summary>
public sealed class ConnectionDoorListenerTests
{
    private static readonly byte[] Refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nRetry-After: 7\r\nConnection: close\r\n\r\nbusy"u8.ToArray();

    [Fact]
    public async Task A_connection_the_door_lets_through_reaches_kestrel_with_its_bytes_unread()
    {
        var door = new Door { Refusing = true };
        var gate = Gate(limit: 4, door);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

        using var client = await ConnectAsync(listener.EndPoint);
        var request = Encoding.ASCII.GetBytes("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
        await client.SendAsync(request);
        var connection = await listener.AcceptAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(connection);

        var read = await connection!.Transport.Input.ReadAtLeastAsync(request.Length).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(request, System.Buffers.BuffersExtensions.ToArray(read.Buffer));
        connection.Transport.Input.AdvanceTo(read.Buffer.End);
        // Kestrel's side of the pipe reaches the client too.
        await connection.Transport.Output.WriteAsync("pong"u8.ToArray());
        var answer = new byte[4];
        Assert.Equal(4, await client.ReceiveAsync(answer));
        Assert.Equal("pong"u8.ToArray(), answer);

        await connection.DisposeAsync();
        Assert.Equal(0, ((ConnectionDoorListener)listener).Refused);
    }

    [Fact]
    public async Task While_the_door_is_not_refusing_no_connection_is_read_before_kestrel()
    {
        var door = new Door { Refusing = false };
        var gate = Gate(limit: 4, door);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = await ConnectAsync(listener.EndPoint);
        await client.SendAsync(Encoding.ASCII.GetBytes("POST /refuse-me HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.NotNull(await listener.AcceptAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Empty(door.Seen);
    }

    /// <summary>
    /// The gate's one slot is held first, so the second connection's request is in the kernel's buffers before the door
    /// can accept it (a door shown a connection with nothing sent yet lets it through).
    /// </summary>
    [Fact]
    public async Task While_the_gates_limit_is_held_nothing_is_accepted_then_a_refused_connection_gets_the_doors_answer_and_an_orderly_close()
    {
        var door = new Door { Refusing = true };
        var gate = Gate(limit: 1, door);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        using var first = await ConnectAsync(listener.EndPoint);
        await first.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        var held = await listener.AcceptAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(held);
        var seenBefore = door.Seen.Count;

        // The second waits in the kernel's backlog: the door is not shown it while the slot is held.
        using var second = await ConnectAsync(listener.EndPoint);
        await second.SendAsync(Encoding.ASCII.GetBytes("POST /refuse-me HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
        await Task.Delay(300);
        Assert.Equal(seenBefore, door.Seen.Count);
        Assert.Equal(1, gate.HeldConnections);
        Assert.Equal(0, ((ConnectionDoorListener)listener).Refused);

        var next = listener.AcceptAsync().AsTask();
        await held!.DisposeAsync();
        // The whole answer, then end of stream (a FIN: a reset would fail the read).
        Assert.Equal(Refusal, await ReadToEndAsync(second));
        Assert.StartsWith("POST /refuse-me HTTP/1.1", Encoding.ASCII.GetString(door.Seen[^1]));
        Assert.Equal(1, ((ConnectionDoorListener)listener).Refused);
        await Task.Delay(200);
        Assert.False(next.IsCompleted, "a refused connection was handed to Kestrel");
        // The refused connection's slot is free again: the next connection is accepted and handed on.
        using var third = await ConnectAsync(listener.EndPoint);
        await third.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.NotNull(await next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Unbinding_ends_the_accepting_thread_and_a_pending_accept_returns_no_connection()
    {
        var gate = Gate(limit: 4, new Door());
        var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var accept = listener.AcceptAsync().AsTask();
        await listener.UnbindAsync();
        Assert.Null(await accept.WaitAsync(TimeSpan.FromSeconds(10)));
        await listener.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAnyAsync<SocketException>(() => late.ConnectAsync(listener.EndPoint));
        Assert.Equal(0, gate.HeldConnections);
    }

    private static ConnectionAcceptGate Gate(int limit, Door door) =>
        new(new SocketTransportFactory(Microsoft.Extensions.Options.Options.Create(new SocketTransportOptions()), NullLoggerFactory.Instance), limit,
            new ConnectionAcceptGate.DoorSettings(new SocketTransportOptions(), NullLogger.Instance, () => door));

    private static async Task<Socket> ConnectAsync(EndPoint endpoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        return socket;
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var all = new MemoryStream();
        var buffer = new byte[1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) all.Write(buffer, 0, n);
        return all.ToArray();
    }

    // Refuses every connection whose first bytes begin with "POST /refuse-me" while Refusing; records what it was shown.
    private sealed class Door : IConnectionDoor
    {
        public bool Refusing { get; set; }
        public List<byte[]> Seen { get; } = [];

        public ReadOnlyMemory<byte>? RefusalAtAccept(ReadOnlySpan<byte> head)
        {
            lock (Seen) Seen.Add(head.ToArray());
            return head.StartsWith("POST /refuse-me"u8) ? Refusal : null;
        }
    }
}
