using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// A passive on-path attacker: a TCP proxy that forwards agent traffic to the node untouched and records every byte
/// the agent sends, so a test can look for secrets in it and replay captured requests byte for byte.
/// </summary>
public sealed class RecordingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<MemoryStream> _upstream = [];

    public RecordingProxy(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";

    /// <summary>Everything the clients sent, connection after connection (Latin-1, so bytes map 1:1 to chars).</summary>
    public string Captured
    {
        get
        {
            lock (_upstream) return string.Concat(_upstream.Select(s => { lock (s) return Encoding.Latin1.GetString(s.ToArray()); }));
        }
    }

    /// <summary>
    /// The raw bytes of every captured request whose request line starts with <paramref name="requestLinePrefix"/>
    /// (e.g. <c>POST /v1/devices/dev-1/failure</c>): request line, headers and Content-Length body, in capture order.
    /// </summary>
    public List<byte[]> Requests(string requestLinePrefix)
    {
        var all = Captured;
        var found = new List<byte[]>();
        for (var at = all.IndexOf(requestLinePrefix, StringComparison.Ordinal); at >= 0; at = all.IndexOf(requestLinePrefix, at + 1, StringComparison.Ordinal))
        {
            var headerEnd = all.IndexOf("\r\n\r\n", at, StringComparison.Ordinal);
            if (headerEnd < 0) continue;
            var headers = all[at..headerEnd];
            var length = headers.Split("\r\n").Select(h => h.Split(':', 2)).Where(h => h.Length == 2 && h[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                .Select(h => int.Parse(h[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
            var end = headerEnd + 4 + length;
            if (end <= all.Length) found.Add(Encoding.Latin1.GetBytes(all[at..end]));
        }
        return found;
    }

    /// <summary>Sends <paramref name="rawRequest"/> to the node on a new connection, byte for byte; returns the status code and body.</summary>
    public async Task<(int Status, string Body)> ReplayAsync(byte[] rawRequest)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, _target);
        var stream = client.GetStream();
        await stream.WriteAsync(rawRequest);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var response = new MemoryStream();
        var buffer = new byte[8192];
        while (true)
        {
            var text = Encoding.Latin1.GetString(response.ToArray());
            var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (headerEnd >= 0)
            {
                var headers = text[..headerEnd].Split("\r\n");
                var status = int.Parse(headers[0].Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
                var rest = text[(headerEnd + 4)..];
                if (headers.Any(h => h.Equals("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase)))
                {
                    if (rest.EndsWith("0\r\n\r\n", StringComparison.Ordinal)) return (status, Dechunk(rest));
                }
                else
                {
                    var lengthLine = headers.FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                    var length = lengthLine is null ? 0 : int.Parse(lengthLine.Split(':', 2)[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    if (rest.Length >= length) return (status, Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(rest[..length])));
                }
            }
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0) throw new IOException("the node closed the connection before a complete response: " + text);
            response.Write(buffer, 0, n);
        }
    }

    private static string Dechunk(string chunked)
    {
        var body = new StringBuilder();
        var at = 0;
        while (true)
        {
            var lineEnd = chunked.IndexOf("\r\n", at, StringComparison.Ordinal);
            var size = Convert.ToInt32(chunked[at..lineEnd].Split(';')[0], 16);
            if (size == 0) return Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(body.ToString()));
            body.Append(chunked, lineEnd + 2, size);
            at = lineEnd + 2 + size + 2;
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            var record = new MemoryStream();
            lock (_upstream) _upstream.Add(record);
            _ = Task.Run(() => PipeAsync(client, record));
        }
    }

    private async Task PipeAsync(TcpClient client, MemoryStream record)
    {
        using var c = client;
        using var server = new TcpClient();
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            var cs = c.GetStream();
            var ss = server.GetStream();
            var up = RecordAsync(cs, ss, record);
            var down = ss.CopyToAsync(cs, _stop.Token);
            await Task.WhenAny(up, down);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task RecordAsync(Stream from, Stream to, MemoryStream record)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0) return;
            lock (record) record.Write(buffer, 0, n);
            await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
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
