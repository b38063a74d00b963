using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// The node's TCP listen sockets, and how many connections wait in their listen backlogs now: connected by the kernel
/// and not yet accepted by the node. Devices waiting there are invisible to every other reading of the node's load (the
/// node has not seen a byte of theirs), and while the backlog is full the kernel drops new connects, which their
/// kernels send again only a second or more later; so a growing backlog is the node saturated at its door.
/// </summary>
/// <remarks>
/// Linux only (<c>TCP_INFO</c> of a listening socket gives its backlog's length without taking the socket's lock);
/// elsewhere <see cref="Waiting"/> is always 0.
/// </remarks>
public sealed class ListenQueue
{
    private const int IpProtocolTcp = 6;
    private const int TcpInfo = 11;
    // struct tcp_info: eight one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked; for a listening socket
    // unacked is the backlog's current length (sk_ack_backlog).
    private const int UnackedOffset = 24;

    private readonly Lock _gate = new();
    private Socket[] _sockets = [];
    // The last reading and when it was taken (Stopwatch ticks): at most one read of the sockets per millisecond, however
    // many early check-ins ask, so a node answering thousands a second makes no more system calls for it.
    private int _lastWaiting;
    private long _readAt;
    private static readonly long Fresh = Stopwatch.Frequency / 1000;

    /// <summary>Whether this platform can read a listen backlog's length.</summary>
    public static bool Supported => OperatingSystem.IsLinux();

    /// <summary>
    /// <see cref="SocketTransportOptions.CreateBoundListenSocket"/> that creates the transport's usual socket and keeps it
    /// here when it listens on TCP.
    /// </summary>
    public Socket CreateBoundListenSocket(EndPoint endpoint)
    {
        var socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        if (Supported && socket.ProtocolType == ProtocolType.Tcp)
            lock (_gate) _sockets = [.. _sockets, socket];
        return socket;
    }

    /// <summary>Connections waiting in the listen backlogs of the node's TCP listen sockets now, read at most a millisecond ago (0 where unsupported).</summary>
    public int Waiting
    {
        get
        {
            var now = Stopwatch.GetTimestamp();
            if (now - Volatile.Read(ref _readAt) < Fresh) return Volatile.Read(ref _lastWaiting);
            var waiting = Read();
            Volatile.Write(ref _lastWaiting, waiting);
            Volatile.Write(ref _readAt, now);
            return waiting;
        }
    }

    private int Read()
    {
        var sockets = Volatile.Read(ref _sockets);
        if (sockets.Length == 0) return 0;
        Span<byte> info = stackalloc byte[UnackedOffset + sizeof(uint)];
        var waiting = 0;
        foreach (var socket in sockets)
        {
            try
            {
                if (socket.GetRawSocketOption(IpProtocolTcp, TcpInfo, info) >= info.Length)
                    waiting += (int)MemoryMarshal.Read<uint>(info[UnackedOffset..]);
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                // Unbound (the node stopping or rebinding): no backlog any more.
                Forget(socket);
            }
        }
        return waiting;
    }

    private void Forget(Socket socket)
    {
        lock (_gate) _sockets = [.. _sockets.Where(s => s != socket)];
    }
}
