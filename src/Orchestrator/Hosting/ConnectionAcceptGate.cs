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
/// outruns the closing: this gate bounds what accepting can take. A connection that finds the gate shut waits in the
/// kernel's listen backlog (<c>Admission:AcceptBacklog</c>), which holds no descriptor of the node.
/// </summary>
public sealed class ConnectionAcceptGate : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    /// <summary>Name of the meter of <c>orch_node_accept_waits</c> and <c>orch_node_connections_held</c>.</summary>
    public const string MeterName = "Orchestrator.Connections";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Waits = Meter.CreateCounter<long>("orch_node_accept_waits",
        description: "Accepts that waited for a held connection to be closed (the node at its accept limit)");
    // One gauge per process (the meter is static); it reads whichever gate the node built last.
    private static ConnectionAcceptGate? _current;
    private static readonly ObservableGauge<int> Held = Meter.CreateObservableGauge("orch_node_connections_held",
        () => _current?.HeldConnections ?? 0, description: "Accepted connections held, open or closing");

    private readonly IConnectionListenerFactory _inner;
    private readonly SemaphoreSlim _slots;
    private readonly int _limit;

    /// <summary>A gate of <paramref name="limit"/> connections in front of <paramref name="inner"/>'s listeners.</summary>
    public ConnectionAcceptGate(IConnectionListenerFactory inner, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        _inner = inner;
        _limit = limit;
        _slots = new SemaphoreSlim(limit, limit);
        _current = this;
    }

    /// <summary>Accepted connections held now (open, or closing and not yet disposed).</summary>
    public int HeldConnections => _limit - _slots.CurrentCount;

    /// <inheritdoc />
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        new Listener(await _inner.BindAsync(endpoint, cancellationToken).ConfigureAwait(false), _slots);

    /// <inheritdoc />
    public bool CanBind(EndPoint endpoint) => _inner is not IConnectionListenerFactorySelector selector || selector.CanBind(endpoint);

    private sealed class Listener(IConnectionListener inner, SemaphoreSlim slots) : IConnectionListener
    {
        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            if (!slots.Wait(0))
            {
                Waits.Add(1);
                // An unbind (the node stopping) ends the wait as it ends the transport's accept: no connection.
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
                try { await slots.WaitAsync(wait.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (_unbound.IsCancellationRequested && !cancellationToken.IsCancellationRequested) { return null; }
            }
            ConnectionContext? accepted;
            try
            {
                accepted = await inner.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                slots.Release();
                throw;
            }
            if (accepted is null)
            {
                slots.Release(); // the listener was unbound
                return null;
            }
            return new HeldConnection(accepted, slots);
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
    private sealed class HeldConnection(ConnectionContext inner, SemaphoreSlim slots) : ConnectionContext
    {
        private int _released;

        public override string ConnectionId { get => inner.ConnectionId; set => inner.ConnectionId = value; }
        public override IFeatureCollection Features => inner.Features;
        public override IDictionary<object, object?> Items { get => inner.Items; set => inner.Items = value; }
        public override System.IO.Pipelines.IDuplexPipe Transport { get => inner.Transport; set => inner.Transport = value; }
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
                if (Interlocked.Exchange(ref _released, 1) == 0) slots.Release();
            }
        }
    }
}
