using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// What the accepting thread asks of a new connection's first bytes before HTTP sees them
/// (<see cref="Gateway.CheckInAdmission"/>'s busy rule).
/// </summary>
public interface IConnectionDoor
{
    /// <summary>True while the door may refuse a connection: only then are a new connection's first bytes read.</summary>
    bool Refusing { get; }

    /// <summary>
    /// The whole answer to write before closing a connection whose first bytes are <paramref name="head"/>, or null to hand
    /// the connection on to HTTP with those bytes unread.
    /// </summary>
    ReadOnlyMemory<byte>? RefusalAtAccept(ReadOnlySpan<byte> head);
}

/// <summary>
/// A TCP listener whose connections are accepted by a thread of its own, not by Kestrel's accept loop on the thread pool:
/// under a storm the pool's queue is long, and a loop that waits in it lets the kernel's listen backlog overflow, which
/// drops the connects of every device alike (their kernels retry a second or more later). While the
/// <see cref="IConnectionDoor"/> is refusing, the thread peeks at each new connection's first bytes and answers the
/// refused ones itself (an accept, a peek, a read, a write and a close; no connection state on the managed heap);
/// every other connection is handed to Kestrel (<see cref="SocketConnectionContextFactory"/>) unread. Accepts are bounded
/// by the <see cref="ConnectionAcceptGate"/>'s slots as Kestrel's own listener is.
/// </summary>
internal sealed class ConnectionDoorListener : IConnectionListener
{
    private readonly Socket _listen;
    private readonly SocketConnectionContextFactory _factory;
    private readonly SemaphoreSlim _slots;
    private readonly IConnectionDoor _door;
    private readonly bool _noDelay;
    private readonly ILogger _log;
    private readonly Channel<Socket> _accepted = Channel.CreateUnbounded<Socket>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _unbound = new();
    private readonly Thread _thread;

    private ConnectionDoorListener(Socket listen, SocketTransportOptions options, ILogger log, SemaphoreSlim slots, IConnectionDoor door)
    {
        _listen = listen;
        _slots = slots;
        _door = door;
        _noDelay = options.NoDelay;
        _log = log;
        _factory = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions
        {
            IOQueueCount = options.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = options.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = options.MaxReadBufferSize,
            MaxWriteBufferSize = options.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = options.UnsafePreferInlineScheduling,
        }, log);
        EndPoint = listen.LocalEndPoint!;
        _thread = new Thread(AcceptLoop) { IsBackground = true, Name = $"accept {EndPoint}" };
        _thread.Start();
    }

    /// <summary>Binds <paramref name="endpoint"/> as Kestrel's sockets transport would (its options' socket and backlog) and starts accepting.</summary>
    public static ConnectionDoorListener Bind(IPEndPoint endpoint, SocketTransportOptions options, ILogger log, SemaphoreSlim slots, IConnectionDoor door)
    {
        Socket socket;
        try
        {
            socket = options.CreateBoundListenSocket(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            // Kestrel's own listener throws this type, which its address binding reports and falls back on.
            throw new AddressInUseException(e.Message, e);
        }
        try
        {
            socket.Listen(options.Backlog);
            return new ConnectionDoorListener(socket, options, log, slots, door);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public EndPoint EndPoint { get; }

    /// <summary>Connections this listener refused itself since it was bound.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    private long _refused;

    private void AcceptLoop()
    {
        // Long enough for any request line the door recognises; what a refused request sent beyond it is read and dropped.
        var buffer = new byte[4096];
        var stop = _unbound.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (!_slots.Wait(0))
                {
                    ConnectionAcceptGate.CountWait();
                    _slots.Wait(stop);
                }
                Socket socket;
                try
                {
                    socket = _listen.Accept();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    _slots.Release();
                    if (stop.IsCancellationRequested) break;
                    // A connection reset before it was accepted, or the process out of descriptors for a moment: not the listener's end.
                    _log.LogDebug(e, "Accepting a connection on {EndPoint} failed", EndPoint);
                    if (e is SocketException { SocketErrorCode: SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable }) Thread.Sleep(10);
                    continue;
                }
                if (_door.Refusing && TryRefuse(socket, buffer)) continue;
                try
                {
                    socket.NoDelay = _noDelay;
                }
                catch (SocketException)
                {
                    // Reset by its peer already: Kestrel sees it closed on the first read.
                }
                _accepted.Writer.TryWrite(socket);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            _accepted.Writer.TryComplete();
        }
    }

    // True when the door refused the connection: its answer was written (unless the peer had gone) and the socket closed.
    private bool TryRefuse(Socket socket, byte[] buffer)
    {
        ReadOnlyMemory<byte>? refusal;
        try
        {
            // Nothing sent yet: the device is slower than the door, and HTTP waits for it instead.
            if (socket.Available == 0) return false;
            var peeked = socket.Receive(buffer, SocketFlags.Peek);
            refusal = _door.RefusalAtAccept(buffer.AsSpan(0, peeked));
            if (refusal is null) return false;
        }
        catch (SocketException)
        {
            refusal = null; // gone before its first bytes were read: nothing to answer
        }
        try
        {
            if (refusal is { } answer)
            {
                socket.Blocking = false;
                // What the request sent is read first, so the close is a FIN behind the answer, not a reset that may discard it.
                while (socket.Available > 0 && socket.Receive(buffer) > 0) { }
                socket.Send(answer.Span);
                socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (SocketException)
        {
            // The peer went away, or its receive window is full: the device retries as after any broken connection.
        }
        finally
        {
            socket.Dispose();
            _slots.Release();
            Interlocked.Increment(ref _refused);
        }
        return true;
    }

    /// <inheritdoc />
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _accepted.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                if (_accepted.Reader.TryRead(out var socket)) return new ConnectionAcceptGate.HeldConnection(_factory.Create(socket), _slots);
        }
        catch (OperationCanceledException) when (_unbound.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
        }
        return null;
    }

    /// <inheritdoc />
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound.Cancel();
        // Closing the listening socket ends the thread's blocking accept.
        _listen.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (!_unbound.IsCancellationRequested) _unbound.Cancel();
        _listen.Dispose();
        _thread.Join(TimeSpan.FromSeconds(5));
        // Accepted but never taken by Kestrel: closed here, their slots freed.
        while (_accepted.Reader.TryRead(out var socket))
        {
            socket.Dispose();
            _slots.Release();
        }
        _factory.Dispose();
        _unbound.Dispose();
        return ValueTask.CompletedTask;
    }
}
