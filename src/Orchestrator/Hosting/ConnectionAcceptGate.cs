using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// The node's listeners accept a connection only while fewer than <see cref="ConnectionLimit.AcceptLimit"/> accepted ones
/// are held, from the accept until the transport has disposed the connection (its descriptor closed). Kestrel's own
/// connection limit closes the connections beyond <see cref="ConnectionLimit.Effective"/>, but each of those holds a
/// descriptor until a thread-pool thread has closed it, and under a flood that keeps the pool busy the accept loop
/// outruns the closing: this gate bounds what accepting can take. With an unread limit
/// (<c>Admission:MaxUnreadConnections</c>) it also accepts nothing while that many accepted connections have not had their
/// first bytes read: under a storm of connects the server falls behind on reading, and every connection it accepts
/// meanwhile is state on the managed heap that young collections promote. A connection that finds the gate shut waits in
/// the kernel's listen backlog (<c>Admission:AcceptBacklog</c>), which holds no descriptor and no memory of the node.
/// </summary>
public sealed class ConnectionAcceptGate : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    /// <summary>Name of the meter of <c>orch_node_accept_waits</c> and <c>orch_node_connections_held</c>.</summary>
    public const string MeterName = "Orchestrator.Connections";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Waits = Meter.CreateCounter<long>("orch_node_accept_waits",
        description: "Accepts that waited for a held connection to be closed (the node at its accept limit)");
    private static readonly Counter<long> UnreadWaits = Meter.CreateCounter<long>("orch_node_accept_unread_waits",
        description: "Accepts that waited for the server to read an accepted connection's first bytes (Admission:MaxUnreadConnections)");
    // One gauge per process (the meter is static); it reads whichever gate the node built last.
    private static ConnectionAcceptGate? _current;
    private static readonly ObservableGauge<int> Held = Meter.CreateObservableGauge("orch_node_connections_held",
        () => _current?.HeldConnections ?? 0, description: "Accepted connections held, open or closing");

    private readonly IConnectionListenerFactory _inner;
    private readonly SemaphoreSlim _slots;
    private readonly SemaphoreSlim? _unread;
    private readonly TimeSpan _unreadFor;
    private readonly int _limit;

    /// <summary>
    /// A gate of <paramref name="limit"/> connections in front of <paramref name="inner"/>'s listeners; with
    /// <paramref name="unreadLimit"/>, also no accept while that many accepted connections have not had their first bytes
    /// read by the server, each counted for at most <paramref name="unreadFor"/> (a client that connects and sends nothing
    /// cannot hold the gate shut longer).
    /// </summary>
    public ConnectionAcceptGate(IConnectionListenerFactory inner, int limit, int unreadLimit = 0, TimeSpan unreadFor = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(unreadLimit);
        if (unreadLimit > 0) ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(unreadFor, TimeSpan.Zero);
        _inner = inner;
        _limit = limit;
        _slots = new SemaphoreSlim(limit, limit);
        if (unreadLimit > 0) _unread = new SemaphoreSlim(unreadLimit, unreadLimit);
        _unreadFor = unreadFor;
        _current = this;
    }

    /// <summary>Accepted connections held now (open, or closing and not yet disposed).</summary>
    public int HeldConnections => _limit - _slots.CurrentCount;

    /// <inheritdoc />
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        new Listener(await _inner.BindAsync(endpoint, cancellationToken).ConfigureAwait(false), _slots, _unread, _unreadFor);

    /// <inheritdoc />
    public bool CanBind(EndPoint endpoint) => _inner is not IConnectionListenerFactorySelector selector || selector.CanBind(endpoint);

    private sealed class Listener(IConnectionListener inner, SemaphoreSlim slots, SemaphoreSlim? unread, TimeSpan unreadFor) : IConnectionListener
    {
        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            // Unread first: while the server is behind on reading the connections it has, the next ones wait in the kernel.
            if (unread is not null && !unread.Wait(0))
            {
                UnreadWaits.Add(1);
                if (!await WaitAsync(unread, cancellationToken).ConfigureAwait(false)) return null;
            }
            if (!slots.Wait(0))
            {
                Waits.Add(1);
                if (!await WaitAsync(slots, cancellationToken).ConfigureAwait(false))
                {
                    unread?.Release();
                    return null;
                }
            }
            ConnectionContext? accepted;
            try
            {
                accepted = await inner.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                slots.Release();
                unread?.Release();
                throw;
            }
            if (accepted is null)
            {
                slots.Release(); // the listener was unbound
                unread?.Release();
                return null;
            }
            return unread is null ? new HeldConnection(accepted, slots) : new HeldConnection(accepted, slots, new UnreadSlot(unread, unreadFor));
        }

        // False when an unbind (the node stopping) ended the wait, as it ends the transport's accept: no connection.
        private async ValueTask<bool> WaitAsync(SemaphoreSlim semaphore, CancellationToken cancellationToken)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
            try
            {
                await semaphore.WaitAsync(wait.Token).ConfigureAwait(false);
                return true;
            }
            catch (OperationCanceledException) when (_unbound.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }

        private readonly CancellationTokenSource _unbound = new();

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _unbound.Cancel();
            return inner.UnbindAsync(cancellationToken);
        }

        public ValueTask DisposeAsync()
        {
            _unbound.Dispose();
            return inner.DisposeAsync();
        }
    }

    // The accepted connection as Kestrel sees it; its slot is free once the transport's own dispose has closed the socket.
    // Kestrel disposes every connection it accepted (KestrelConnection, finally), so no slot is lost.
    private sealed class HeldConnection(ConnectionContext inner, SemaphoreSlim slots, UnreadSlot? unread = null) : ConnectionContext
    {
        private int _released;
        private System.IO.Pipelines.IDuplexPipe? _transport = unread is null ? null : new FirstReadPipe(inner.Transport, unread);

        public override string ConnectionId { get => inner.ConnectionId; set => inner.ConnectionId = value; }
        public override IFeatureCollection Features => inner.Features;
        public override IDictionary<object, object?> Items { get => inner.Items; set => inner.Items = value; }
        public override System.IO.Pipelines.IDuplexPipe Transport
        {
            get => _transport ?? inner.Transport;
            set
            {
                if (unread is null) inner.Transport = value;
                else _transport = value;
            }
        }
        public override CancellationToken ConnectionClosed { get => inner.ConnectionClosed; set => inner.ConnectionClosed = value; }
        public override EndPoint? LocalEndPoint { get => inner.LocalEndPoint; set => inner.LocalEndPoint = value; }
        public override EndPoint? RemoteEndPoint { get => inner.RemoteEndPoint; set => inner.RemoteEndPoint = value; }
        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);
        public override void Abort() => inner.Abort();

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                unread?.Release();
                if (Interlocked.Exchange(ref _released, 1) == 0) slots.Release();
            }
        }
    }

    // One connection's place among the unread ones: given back once, at its first read, its end, or unreadFor after its
    // accept, whichever comes first.
    private sealed class UnreadSlot
    {
        private readonly SemaphoreSlim _unread;
        private ITimer? _timer;
        private int _released;

        public UnreadSlot(SemaphoreSlim unread, TimeSpan unreadFor)
        {
            _unread = unread;
            _timer = TimeProvider.System.CreateTimer(static s => ((UnreadSlot)s!).Release(), this, unreadFor, Timeout.InfiniteTimeSpan);
        }

        public bool Released => Volatile.Read(ref _released) != 0;

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            Interlocked.Exchange(ref _timer, null)?.Dispose();
            _unread.Release();
        }
    }

    // The transport as the server sees it; its reader gives the unread slot back when a first read returns.
    private sealed class FirstReadPipe(System.IO.Pipelines.IDuplexPipe inner, UnreadSlot unread) : System.IO.Pipelines.IDuplexPipe
    {
        public System.IO.Pipelines.PipeReader Input { get; } = new FirstReadReader(inner.Input, unread);
        public System.IO.Pipelines.PipeWriter Output => inner.Output;
    }

    private sealed class FirstReadReader(System.IO.Pipelines.PipeReader inner, UnreadSlot unread) : System.IO.Pipelines.PipeReader
    {
        public override ValueTask<System.IO.Pipelines.ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            if (unread.Released) return inner.ReadAsync(cancellationToken);
            var read = inner.ReadAsync(cancellationToken);
            if (!read.IsCompleted) return AfterAsync(read);
            unread.Release();
            return read;
        }

        private async ValueTask<System.IO.Pipelines.ReadResult> AfterAsync(ValueTask<System.IO.Pipelines.ReadResult> read)
        {
            try
            {
                return await read.ConfigureAwait(false);
            }
            finally
            {
                unread.Release();
            }
        }

        public override bool TryRead(out System.IO.Pipelines.ReadResult result)
        {
            var read = inner.TryRead(out result);
            if (read) unread.Release();
            return read;
        }

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);
        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);
        public override void CancelPendingRead() => inner.CancelPendingRead();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
