using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// A <see cref="SaturationProbe"/> whose measurement is one HTTP request to the node itself (<c>GET /health/live</c> over a
/// kept-alive loopback connection, plain blocking sockets on the probe's own thread): how long a request that arrives now
/// waits for its answer. Under a storm the requests wait where no counter of the process shows them — in the socket
/// engine's queue of ready connections and the kernel's buffers, before the thread pool's queue — and this is the one
/// reading that includes every such queue of an accepted connection. Connections not accepted yet (the listen backlog)
/// it cannot see, its own connection being open: <see cref="Hosting.ListenQueue"/> reads those.
/// </summary>
/// <remarks>
/// The target is the node's first plain-HTTP address once the server has started (a wildcard address is reached on the
/// loopback of its family); until then, and for a node that listens only with TLS, there are no readings and the
/// sustained reading stays 0 (<c>Admission:BusyProbe=threadpool</c> measures without a listener).
/// </remarks>
public sealed class LoopbackRequestProbe : SaturationProbe
{
    private static readonly byte[] Request = "GET /health/live HTTP/1.1\r\nHost: localhost\r\nUser-Agent: orchestrator-admission-probe\r\n\r\n"u8.ToArray();
    private readonly Func<IPEndPoint?> _target;
    private readonly byte[] _buffer = new byte[4096];
    private Socket? _socket;

    /// <summary>Starts the probe thread against <paramref name="target"/> (asked again until it names an endpoint).</summary>
    public LoopbackRequestProbe(Func<IPEndPoint?> target, int periodMilliseconds, int sustainedProbes = 1, ProbeCalmPace pace = default)
        : base("loopback request probe", periodMilliseconds, sustainedProbes, GatewayMetrics.LoopbackRequestWait, pace)
    {
        _target = target;
        Start();
    }

    /// <summary>The probe of <paramref name="server"/>'s first plain-HTTP address.</summary>
    public static LoopbackRequestProbe Of(IServer server, int periodMilliseconds, int sustainedProbes, ProbeCalmPace pace = default) =>
        new(() => LoopbackOf(Hosting.ServerAddresses.PlainHttp(server)), periodMilliseconds, sustainedProbes, pace);

    /// <summary>The loopback endpoint of the first of <paramref name="addresses"/> (plain HTTP) with an IP or <c>localhost</c> host, or null.</summary>
    public static IPEndPoint? LoopbackOf(IEnumerable<Uri> addresses)
    {
        foreach (var address in addresses)
        {
            var host = address.Host.Trim('[', ']');
            if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return new IPEndPoint(IPAddress.Loopback, address.Port);
            if (!IPAddress.TryParse(host, out var ip)) continue;
            if (ip.Equals(IPAddress.Any)) ip = IPAddress.Loopback;
            else if (ip.Equals(IPAddress.IPv6Any)) ip = IPAddress.IPv6Loopback;
            return new IPEndPoint(ip, address.Port);
        }
        return null;
    }

    /// <inheritdoc />
    protected override long? Measure(long startedAt, CancellationToken stop)
    {
        try
        {
            if (_socket is null)
            {
                if (_target() is not { } target) return null;
                var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 30_000, SendTimeout = 30_000 };
                try { socket.Connect(target); }
                catch { socket.Dispose(); throw; }
                _socket = socket;
                // The connection's set-up is no request's wait: measure from here.
                startedAt = Stopwatch.GetTimestamp();
            }
            _socket.Send(Request);
            ReadAnswer(_socket);
            return Stopwatch.GetTimestamp() - startedAt;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // The node closed the connection (a restart, its keep-alive limit) or is gone: no reading; connect again next time.
            _socket?.Dispose();
            _socket = null;
            stop.ThrowIfCancellationRequested();
            return null;
        }
    }

    // Reads one answer: the head, then Content-Length bytes of body or chunks up to the last one.
    private void ReadAnswer(Socket socket)
    {
        var have = 0;
        int headEnd;
        while ((headEnd = _buffer.AsSpan(0, have).IndexOf("\r\n\r\n"u8)) < 0) have += Receive(socket, have);
        var head = Encoding.ASCII.GetString(_buffer, 0, headEnd);
        var body = have - (headEnd + 4);
        if (HeaderValue(head, "Content-Length") is { } lengthText && int.TryParse(lengthText, out var length))
        {
            while (body < length)
            {
                // The body of /health/live is a word; one larger than the buffer is read through it.
                var n = Receive(socket, 0, Math.Min(_buffer.Length, length - body));
                body += n;
            }
            return;
        }
        if (HeaderValue(head, "Transfer-Encoding") is { } te && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            Buffer.BlockCopy(_buffer, headEnd + 4, _buffer, 0, body);
            have = body;
            while (_buffer.AsSpan(0, have).IndexOf("0\r\n\r\n"u8) < 0)
            {
                if (have == _buffer.Length) { Buffer.BlockCopy(_buffer, have - 8, _buffer, 0, 8); have = 8; }
                have += Receive(socket, have);
            }
            return;
        }
        throw new IOException($"The node's /health/live answer has neither Content-Length nor chunked encoding: {head}");
    }

    private int Receive(Socket socket, int offset, int count = -1)
    {
        if (offset == _buffer.Length) throw new IOException("The node's /health/live answer head is longer than the probe's buffer.");
        var n = socket.Receive(_buffer, offset, count < 0 ? _buffer.Length - offset : count, SocketFlags.None);
        if (n == 0) throw new IOException("The node closed the probe's connection.");
        return n;
    }

    private static string? HeaderValue(string head, string name)
    {
        foreach (var line in head.Split("\r\n"))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals(name, StringComparison.OrdinalIgnoreCase)) return line[(colon + 1)..].Trim();
        }
        return null;
    }

    // A blocked receive ends when its socket is closed; the probe's thread then sees the stop.
    /// <inheritdoc />
    protected override void Interrupt() => Volatile.Read(ref _socket)?.Dispose();
}
