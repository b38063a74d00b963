using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

/// <summary>
/// The storm from agents' connections (STORM_CLIENT=sockets, <c>SteadyBench sockstorm</c>, a process of its own): the
/// check-ins wrk would send (the same pre-signed part files, <see cref="WrkStorm.PrepareAsync"/>), from STORM_CONNECTIONS
/// slots that each hold one agent at a time and use its connection as the agent's HTTP client does: a refused check-in
/// (429/503) is waited out for Retry-After plus 0–999 ms (the agent's jitter) on the same connection, unless the answer
/// said <c>Connection: close</c>, in which case the connection is gone and the retry opens a new one; an answered
/// check-in ends that agent's session (the agent disposes its client) and the slot's next agent connects at once (so
/// does each request of the trivial-endpoint run, the client's ceiling for this pattern).
/// wrk keeps every connection open and reconnects at once when the server closes one, which is not what an agent does.
/// Raw sockets, the request bytes composed from the part files, so the client's CPU stays near wrk's. Prints the same
/// "wrk-storm {json}" result line as storm.lua, with the connections opened.
/// </summary>
static class AgentSocketStorm
{
    private static readonly byte[] Crlf2 = "\r\n\r\n"u8.ToArray();

    /// <summary>The line this process prints once it is ready to start (STORM_WAIT_FOR_GO=1); a line on stdin starts it.</summary>
    public const string ReadyLine = "storm-ready";

    //   SteadyBench sockstorm URL DIR SECONDS SLOTS HONOUR(0|1) [TRIVIAL_PATH]
    public static async Task<int> RunAsync(string[] args)
    {
        var uri = new Uri(args[0]);
        var dir = args[1];
        var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
        var slots = int.Parse(args[3], CultureInfo.InvariantCulture);
        var honour = args[4] == "1";
        var trivial = args.Length > 5 ? args[5] : null;
        var host = $"{uri.Host}:{uri.Port}";
        var endpoint = SourceAddresses.NodeEndpoint(uri);
        var lines = Lines.Load(dir);
        // STORM_WAIT_FOR_GO=1: the storm's window starts when the parent says so, not while its part files are read (seconds
        // of this process's CPU that would overlap the storm's first seconds and the cadence devices' start).
        if (Environment.GetEnvironmentVariable("STORM_WAIT_FOR_GO") == "1")
        {
            Console.WriteLine(ReadyLine);
            Console.ReadLine();
        }
        var stats = new Stats();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var clock = Stopwatch.StartNew();
        var tasks = new Task[slots];
        for (var i = 0; i < slots; i++)
        {
            var source = SourceAddresses.For(endpoint, i);
            tasks[i] = Task.Run(() => SlotAsync(endpoint, source, host, lines, trivial, honour, stats, stop.Token));
        }
        await Task.WhenAll(tasks);
        var elapsed = clock.Elapsed.TotalSeconds;
        var latencies = stats.Latencies();
        Array.Sort(latencies);
        double Pct(double p) => latencies.Length == 0 ? 0 : latencies[Math.Min(latencies.Length - 1, (int)(p * latencies.Length))] / 1000.0;
        // The line WrkStorm.RunAsync reads from storm.lua, written from the record it reads it into.
        var result = new WrkStorm.Result(stats.Requests, elapsed, stats.S200, stats.S401, stats.S503, stats.S429, stats.SOther, stats.RetryAfter,
            lines.Wrapped, stats.ConnectErrors, stats.ReadErrors, stats.WriteErrors, Timeouts: 0, Pct(0.50), Pct(0.99),
            latencies.Length == 0 ? 0 : latencies[^1] / 1000.0, stats.Waits, stats.WaitMs / 1000.0)
        {
            Connects = stats.Connects,
            ClosedByServer = stats.ClosedByServer,
        };
        Console.WriteLine("wrk-storm " + JsonSerializer.Serialize(result, CheckIns.Json));
        return 0;
    }

    private static async Task SlotAsync(IPEndPoint endpoint, IPAddress? source, string host, Lines lines, string? trivial, bool honour, Stats stats, CancellationToken stop)
    {
        var request = new byte[4096];
        var response = new byte[8192];
        var latencies = new List<int>(4096);
        Socket? socket = null;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (socket is null)
                {
                    socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        SourceAddresses.Bind(socket, source);
                        await socket.ConnectAsync(endpoint, stop);
                        Interlocked.Increment(ref stats.Connects);
                    }
                    catch (SocketException)
                    {
                        Interlocked.Increment(ref stats.ConnectErrors);
                        Abort(ref socket);
                        await Task.Delay(100, stop);
                        continue;
                    }
                }
                var length = lines.Compose(request, host, trivial);
                var sent = Stopwatch.GetTimestamp();
                try
                {
                    await socket.SendAsync(request.AsMemory(0, length), SocketFlags.None, stop);
                }
                catch (SocketException)
                {
                    Interlocked.Increment(ref stats.WriteErrors);
                    Abort(ref socket);
                    continue;
                }
                var answer = await ReadAnswerAsync(socket, response, stop);
                if (answer is null)
                {
                    Interlocked.Increment(ref stats.ReadErrors);
                    Abort(ref socket);
                    continue;
                }
                latencies.Add((int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(sent).Ticks / 10));
                Interlocked.Increment(ref stats.Requests);
                var (status, retryAfter, close) = answer.Value;
                var wait = 0;
                switch (status)
                {
                    case 200: Interlocked.Increment(ref stats.S200); break;
                    case 401: Interlocked.Increment(ref stats.S401); break;
                    case 503 or 429:
                        Interlocked.Increment(ref status == 503 ? ref stats.S503 : ref stats.S429);
                        if (retryAfter >= 0)
                        {
                            Interlocked.Increment(ref stats.RetryAfter);
                            // UpdateSession: the server's delta-seconds, at most an hour, plus 0-999 ms of the agent's own.
                            if (honour) wait = Math.Min(retryAfter, 3600) * 1000 + Random.Shared.Next(1000);
                        }
                        break;
                    default: Interlocked.Increment(ref stats.SOther); break;
                }
                if (close) Interlocked.Increment(ref stats.ClosedByServer);
                // An answered agent's session is over (its client disposed); so is a connection the server closed.
                if (close || status is not (503 or 429)) Abort(ref socket);
                if (wait > 0)
                {
                    Interlocked.Increment(ref stats.Waits);
                    Interlocked.Add(ref stats.WaitMs, wait);
                    await Task.Delay(wait, stop);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            Abort(ref socket);
            stats.Add(latencies);
        }
    }

    // Closed with a reset: the client's TIME_WAIT would otherwise exhaust the loopback's ports within the storm.
    private static void Abort(ref Socket? socket)
    {
        if (socket is null) return;
        try { socket.LingerState = new LingerOption(true, 0); } catch (SocketException) { }
        socket.Dispose();
        socket = null;
    }

    // One HTTP/1.1 answer: status, Retry-After (-1 when absent), whether it says Connection: close; null on a broken connection.
    private static async ValueTask<(int Status, int RetryAfter, bool Close)?> ReadAnswerAsync(Socket socket, byte[] buffer, CancellationToken stop)
    {
        var have = 0;
        var headEnd = -1;
        try
        {
            while (headEnd < 0)
            {
                if (have == buffer.Length) return null;
                var n = await socket.ReceiveAsync(buffer.AsMemory(have), SocketFlags.None, stop);
                if (n == 0) return null;
                have += n;
                headEnd = buffer.AsSpan(0, have).IndexOf(Crlf2);
            }
            var head = buffer.AsSpan(0, headEnd);
            if (head.Length < 12 || !Utf8Parser.TryParse(head.Slice(9, 3), out int status, out _)) return null;
            int contentLength = 0, retryAfter = -1;
            var close = false;
            foreach (var range in head.Split("\r\n"u8))
            {
                var line = head[range];
                var colon = line.IndexOf((byte)':');
                if (colon < 0) continue;
                var name = line[..colon];
                var value = line[(colon + 1)..].Trim((byte)' ');
                if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8)) Utf8Parser.TryParse(value, out contentLength, out _);
                else if (Ascii.EqualsIgnoreCase(name, "Retry-After"u8)) { if (!Utf8Parser.TryParse(value, out retryAfter, out _)) retryAfter = -1; }
                else if (Ascii.EqualsIgnoreCase(name, "Connection"u8)) close = Ascii.EqualsIgnoreCase(value, "close"u8);
            }
            var remaining = contentLength - (have - headEnd - 4);
            while (remaining > 0)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, stop);
                if (n == 0) return null;
                remaining -= n;
            }
            return (status, retryAfter, close);
        }
        catch (SocketException)
        {
            return null;
        }
    }

    private sealed class Stats
    {
        public long Requests, S200, S401, S503, S429, SOther, RetryAfter, ConnectErrors, ReadErrors, WriteErrors, Waits, WaitMs, Connects, ClosedByServer;
        private readonly List<List<int>> _latencies = [];

        public void Add(List<int> latencies) { lock (_latencies) _latencies.Add(latencies); }

        public int[] Latencies() { lock (_latencies) return _latencies.SelectMany(l => l).ToArray(); }
    }

    /// <summary>The part files' pre-signed check-ins ("path TAB authorization TAB body" a line), taken in turn by every slot.</summary>
    private sealed class Lines
    {
        private readonly byte[][] _parts;
        private readonly int[][] _starts;
        private long _next = -1;
        public long Wrapped;

        private Lines(byte[][] parts, int[][] starts) => (_parts, _starts) = (parts, starts);

        public static Lines Load(string dir)
        {
            var files = Directory.GetFiles(dir, "part-*").Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new FileNotFoundException($"sockstorm: no part-N files in {dir} (WrkStorm.PrepareAsync writes them)");
            var parts = files.Select(File.ReadAllBytes).ToArray();
            var starts = parts.Select(p =>
            {
                var s = new List<int> { 0 };
                for (var i = 0; i < p.Length - 1; i++) if (p[i] == (byte)'\n') s.Add(i + 1);
                return s.ToArray();
            }).ToArray();
            return new Lines(parts, starts);
        }

        // The parts in turn, each in its own order (a device's sequence numbers increase down its part).
        public int Compose(byte[] into, string host, string? trivial)
        {
            var k = Interlocked.Increment(ref _next);
            var part = (int)(k % _parts.Length);
            var index = k / _parts.Length;
            var count = _starts[part].Length;
            if (index >= count && index % count == 0 && part == 0) Interlocked.Increment(ref Wrapped);
            var start = _starts[part][index % count];
            var bytes = _parts[part].AsSpan(start);
            var line = bytes[..bytes.IndexOf((byte)'\n')];
            var t1 = line.IndexOf((byte)'\t');
            var path = line[..t1];
            var rest = line[(t1 + 1)..];
            var t2 = rest.IndexOf((byte)'\t');
            var auth = rest[..t2];
            var body = rest[(t2 + 1)..];
            var w = new SpanWriter(into);
            if (trivial is not null)
            {
                w.Ascii("GET "); w.Ascii(trivial); w.Ascii(" HTTP/1.1\r\nHost: "); w.Ascii(host); w.Ascii("\r\nAuthorization: "); w.Bytes(auth); w.Ascii("\r\n\r\n");
            }
            else
            {
                w.Ascii("POST "); w.Bytes(path); w.Ascii(" HTTP/1.1\r\nHost: "); w.Ascii(host); w.Ascii("\r\nAuthorization: "); w.Bytes(auth);
                w.Ascii("\r\nContent-Type: application/json\r\nContent-Length: "); w.Ascii(body.Length.ToString(CultureInfo.InvariantCulture)); w.Ascii("\r\n\r\n");
                w.Bytes(body);
            }
            return w.Length;
        }
    }

    private ref struct SpanWriter(Span<byte> into)
    {
        private readonly Span<byte> _into = into;
        public int Length { get; private set; }

        public void Bytes(ReadOnlySpan<byte> b) { b.CopyTo(_into[Length..]); Length += b.Length; }

        public void Ascii(string s) => Length += Encoding.ASCII.GetBytes(s, _into[Length..]);
    }
}

/// <summary>
/// The storm's and the cadence devices' connections from many loopback source addresses, as a fleet's come from many
/// hosts (STORM_SOURCE_ADDRESSES, default 64; 0: the kernel's choice, 127.0.0.1). From one address, every connect to the
/// node's one port searches the same ~28k ephemeral ports, among the storm's open connections and the node's TIME_WAIT
/// ones (both ends of a loopback connection are in one host's table): the search took 40 % of the machine at the storm's
/// onset and starved the node. Bound with IP_BIND_ADDRESS_NO_PORT, so the port is still chosen at connect, per address.
/// </summary>
static class SourceAddresses
{
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;

    /// <summary>The node's address as the raw-socket clients connect to it (<c>localhost</c> is 127.0.0.1).</summary>
    public static IPEndPoint NodeEndpoint(Uri url) => new(IPAddress.Parse(url.Host == "localhost" ? "127.0.0.1" : url.Host), url.Port);

    /// <summary>The source address of storm slot <paramref name="slot"/>: 127.0.1.1–127.0.1.N for a loopback IPv4 node, else null.</summary>
    public static IPAddress? For(IPEndPoint node, int slot)
    {
        var n = (int)Env.Get("STORM_SOURCE_ADDRESSES", 64);
        return n <= 0 || !Spreads(node) ? null : new IPAddress(new byte[] { 127, 0, 1, (byte)(1 + slot % Math.Min(n, 250)) });
    }

    /// <summary>The cadence devices' own source address, 127.0.2.1 (other hosts than the storm's), when the storm's are spread.</summary>
    public static IPAddress? ForCadence(IPEndPoint node) => For(node, 0) is null ? null : new IPAddress(new byte[] { 127, 0, 2, 1 });

    private static bool Spreads(IPEndPoint node) =>
        OperatingSystem.IsLinux() && node.AddressFamily == AddressFamily.InterNetwork && IPAddress.IsLoopback(node.Address);

    /// <summary>Binds <paramref name="socket"/> to <paramref name="source"/> (no port yet) when there is one.</summary>
    public static void Bind(Socket socket, IPAddress? source)
    {
        if (source is null) return;
        socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
        socket.Bind(new IPEndPoint(source, 0));
    }
}
