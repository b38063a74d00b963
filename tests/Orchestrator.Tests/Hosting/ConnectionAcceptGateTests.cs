using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Tests.Hosting;

/// <summary>
/// The accept gate in front of the node's listeners: no accept while the limit's connections are held, a slot free again
/// only once its connection is disposed (once, however often it is disposed), and none lost to an unbound listener.
/// The real process under a flood: OpenFileLimitTests.
/// </summary>
public sealed class ConnectionAcceptGateTests
{
    [Fact]
    public async Task No_connection_is_accepted_while_the_limit_is_held_and_each_dispose_frees_one_slot_once()
    {
        var inner = new FakeListenerFactory();
        var gate = new ConnectionAcceptGate(inner, limit: 2);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

        var first = await listener.AcceptAsync();
        var second = await listener.AcceptAsync();
        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Equal(2, gate.HeldConnections);
        Assert.Equal(2, inner.Accepted);

        // The third accept does not even ask the transport while two are held.
        var third = listener.AcceptAsync().AsTask();
        await Task.Delay(200);
        Assert.False(third.IsCompleted);
        Assert.Equal(2, inner.Accepted);

        // Disposed twice (Kestrel's limit and its connection's end both dispose): one slot, once.
        await first!.DisposeAsync();
        await first.DisposeAsync();
        var accepted = await third.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(accepted);
        Assert.True(inner.Connections[0].Disposed);
        Assert.Equal(2, gate.HeldConnections);
        var fourth = listener.AcceptAsync().AsTask();
        await Task.Delay(200);
        Assert.False(fourth.IsCompleted);

        // The wrapped connection is the transport's: same id, features, pipe.
        Assert.Equal(inner.Connections[1].ConnectionId, second!.ConnectionId);
        Assert.Same(inner.Connections[1].Features, second.Features);
        await second.DisposeAsync();
        Assert.NotNull(await fourth.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task An_unbound_listener_returns_its_slot()
    {
        var inner = new FakeListenerFactory { Unbound = true };
        var gate = new ConnectionAcceptGate(inner, limit: 1);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.Null(await listener.AcceptAsync());
        Assert.Null(await listener.AcceptAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, gate.HeldConnections);
    }

    [Fact]
    public async Task An_accept_waiting_at_the_limit_ends_without_a_connection_when_the_listener_is_unbound()
    {
        var gate = new ConnectionAcceptGate(new FakeListenerFactory(), limit: 1);
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotNull(await listener.AcceptAsync());
        var waiting = listener.AcceptAsync().AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        await listener.UnbindAsync();
        Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gate.HeldConnections);
    }

    [Fact]
    public async Task With_an_unread_limit_no_connection_is_accepted_until_the_server_has_read_a_held_ones_first_bytes()
    {
        var inner = new FakeListenerFactory();
        var gate = new ConnectionAcceptGate(inner, limit: 10, unreadLimit: 1, unreadFor: TimeSpan.FromMinutes(5));
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var first = await listener.AcceptAsync();
        Assert.NotNull(first);

        // The server waits for the first connection's bytes: the second accept does not even ask the transport.
        var read = first!.Transport.Input.ReadAsync().AsTask();
        var second = listener.AcceptAsync().AsTask();
        await Task.Delay(200);
        Assert.False(second.IsCompleted);
        Assert.Equal(1, inner.Accepted);

        // The bytes arrive and the server's read returns: the next connection is accepted.
        await inner.Connections[0].Client.WriteAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        var result = await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("GET / HTTP/1.1\r\n\r\n"u8.ToArray(), System.Buffers.BuffersExtensions.ToArray(result.Buffer));
        first.Transport.Input.AdvanceTo(result.Buffer.End);
        var accepted = await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(accepted);

        // Reads after the first give nothing back twice: the second connection, unread, still holds the one place.
        await inner.Connections[0].Client.WriteAsync("x"u8.ToArray());
        var again = await first.Transport.Input.ReadAsync();
        first.Transport.Input.AdvanceTo(again.Buffer.End);
        var third = listener.AcceptAsync().AsTask();
        await Task.Delay(200);
        Assert.False(third.IsCompleted);
        // A connection that ends unread gives its place back.
        await accepted!.DisposeAsync();
        Assert.NotNull(await third.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_connection_that_sends_nothing_holds_its_unread_place_only_for_the_unread_time()
    {
        var inner = new FakeListenerFactory();
        var gate = new ConnectionAcceptGate(inner, limit: 10, unreadLimit: 1, unreadFor: TimeSpan.FromMilliseconds(300));
        await using var listener = await gate.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotNull(await listener.AcceptAsync());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.NotNull(await listener.AcceptAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
    }

    private sealed class FakeListenerFactory : IConnectionListenerFactory
    {
        public bool Unbound { get; init; }
        public List<FakeConnection> Connections { get; } = [];
        public int Accepted => Connections.Count;

        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<IConnectionListener>(new FakeListener(this, endpoint));

        private sealed class FakeListener(FakeListenerFactory owner, EndPoint endpoint) : IConnectionListener
        {
            public EndPoint EndPoint => endpoint;

            public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
            {
                if (owner.Unbound) return ValueTask.FromResult<ConnectionContext?>(null);
                var c = new FakeConnection($"c{owner.Connections.Count}");
                owner.Connections.Add(c);
                return ValueTask.FromResult<ConnectionContext?>(c);
            }

            public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    private sealed class FakeConnection : ConnectionContext
    {
        private readonly System.IO.Pipelines.Pipe _in = new(), _out = new();

        public FakeConnection(string id)
        {
            ConnectionId = id;
            Transport = new Pipes(_in.Reader, _out.Writer);
        }

        /// <summary>The client's end: what it writes, the server reads.</summary>
        public System.IO.Pipelines.PipeWriter Client => _in.Writer;

        public bool Disposed { get; private set; }
        public override string ConnectionId { get; set; }
        public override IFeatureCollection Features { get; } = new FeatureCollection();
        public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
        public override System.IO.Pipelines.IDuplexPipe Transport { get; set; }

        private sealed record Pipes(System.IO.Pipelines.PipeReader Input, System.IO.Pipelines.PipeWriter Output) : System.IO.Pipelines.IDuplexPipe;

        public override ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }
}
