using System.Net;
using System.Net.Sockets;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// A TCP proxy between agents and the node that misbehaves on purpose, once per connection, in turn: connection
/// 0, 3, 6... is cut after a random number of response bytes (a truncated response), connection 1, 4, 7... gets one
/// response byte flipped (a corrupted chunk, header or body), the rest pass untouched, so progress is always possible.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly Random _random = new(42);
    private int _connections;
    private int _cuts;
    private int _corruptions;

    public FaultProxy(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
    public int Cuts => Volatile.Read(ref _cuts);
    public int Corruptions => Volatile.Read(ref _corruptions);

    /// <summary>Faults happen only while this is true (so a test can finish over a clean line, too).</summary>
    public bool Faulty { get; set; } = true;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            var n = Interlocked.Increment(ref _connections) - 1;
            int faultAt;
            lock (_random) faultAt = _random.Next(100, 60_000);
            var mode = !Faulty ? 2 : n % 3;
            _ = Task.Run(() => PipeAsync(client, mode, faultAt));
        }
    }

    private async Task PipeAsync(TcpClient client, int mode, int faultAt)
    {
        using var c = client;
        using var server = new TcpClient();
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            var cs = c.GetStream();
            var ss = server.GetStream();
            var up = cs.CopyToAsync(ss, _stop.Token);
            var down = DownAsync(ss, cs, mode, faultAt);
            await Task.WhenAny(up, down);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task DownAsync(Stream from, Stream to, int mode, int faultAt)
    {
        var buffer = new byte[16 * 1024];
        long sent = 0;
        var faulted = false;
        while (true)
        {
            var n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0) return;
            if (!faulted && sent + n > faultAt && mode != 2)
            {
                var at = (int)(faultAt - sent);
                faulted = true;
                if (mode == 0)
                {
                    await to.WriteAsync(buffer.AsMemory(0, at), _stop.Token);
                    Interlocked.Increment(ref _cuts);
                    return; // both sockets are closed: the response is truncated mid-stream
                }
                buffer[at] ^= 0x20;
                Interlocked.Increment(ref _corruptions);
            }
            await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            sent += n;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _accepting; } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
