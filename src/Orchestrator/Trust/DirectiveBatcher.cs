using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Trust;

/// <summary>
/// Signs directive payloads in batches (docs/protocol.md "Directive"): one Ed25519 signature over the Merkle root of
/// every payload that is ready, each answer carrying its own payload, the root signature and its inclusion path.
/// No timer: a payload that finds no signature pending queues one signing pass on the thread pool, behind the work
/// already queued there (at once on an idle node, a batch of one; on a busy one, behind that work twice); payloads that
/// arrive before the pass runs join it, and a pass that leaves payloads behind (more than <see cref="MaxSize"/>, or
/// arrived while it signed) queues the next.
/// </summary>
/// <remarks>
/// The pass completes each answer's wait on its own thread: the rest of that check-in (writing its answer) runs there,
/// so a batch of k costs one thread-pool hand-off, not k.
/// </remarks>
public sealed class DirectiveBatcher : IThreadPoolWorkItem
{
    private readonly ReleaseSigningKey _key;
    private readonly string _keyId;
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private bool _queued; // a signing pass is queued or running; invariant: false implies the queue is empty
    private bool _deferred; // the queued pass has gone to the back of the pool's queue once; only the pass reads or writes it

    /// <summary>A batcher signing with <paramref name="key"/> (key id <paramref name="keyId"/>), at most <paramref name="maxSize"/> payloads per root.</summary>
    public DirectiveBatcher(ReleaseSigningKey key, string keyId, int maxSize)
    {
        if (maxSize is < 1 or > DirectiveBatch.MaxSize)
            throw new ArgumentOutOfRangeException(nameof(maxSize), $"a directive batch holds 1 to {DirectiveBatch.MaxSize} payloads, not {maxSize}.");
        _key = key;
        _keyId = keyId;
        MaxSize = maxSize;
    }

    /// <summary>Most payloads one root covers.</summary>
    public int MaxSize { get; }

    // Continuations run on the completing thread (no RunContinuationsAsynchronously): see the remarks.
    private sealed class Pending(byte[] payload) : TaskCompletionSource<SignedDirective>
    {
        public readonly byte[] Payload = payload;
    }

    /// <summary>
    /// <paramref name="payload"/> signed in a batch: its bytes, the batch root's signature and its inclusion proof, written
    /// as an envelope where the answer needs it (<see cref="SignedDirective"/>).
    /// </summary>
    public ValueTask<SignedDirective> SignAsync(byte[] payload)
    {
        var me = new Pending(payload);
        bool queuePass;
        lock (_gate)
        {
            _queue.Enqueue(me);
            queuePass = !_queued;
            _queued = true;
        }
        // The global queue, behind the work already queued: under load that is check-ins about to ask for a signature,
        // which join this pass's batch; an idle node runs it at once. The wait follows the load, no timer.
        if (queuePass) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        return new ValueTask<SignedDirective>(me.Task);
    }

    /// <summary>
    /// One signing pass: signs the payloads waiting now (at most <see cref="MaxSize"/>) and queues the next pass if any are
    /// left. A pass that finds fewer than <see cref="MaxSize"/> payloads while other work is queued on the thread pool goes
    /// to the back of the queue once more instead: under load that work is mostly check-ins on their way to a signature,
    /// so one signature covers them too; an idle pool (nothing queued) signs at once.
    /// </summary>
    void IThreadPoolWorkItem.Execute()
    {
        if (!_deferred && ThreadPool.PendingWorkItemCount > 0)
        {
            int waiting;
            lock (_gate) waiting = _queue.Count;
            if (waiting < MaxSize)
            {
                _deferred = true;
                ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                return;
            }
        }
        _deferred = false;
        Pending[] batch;
        lock (_gate)
        {
            batch = new Pending[Math.Min(_queue.Count, MaxSize)];
            for (var i = 0; i < batch.Length; i++) batch[i] = _queue.Dequeue();
        }
        Sign(batch);
        bool more;
        lock (_gate)
        {
            more = _queue.Count > 0;
            _queued = more;
        }
        if (more) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    // Never throws: a failure fails the batch's waiters, and the pass goes on to the next batch.
    private void Sign(Pending[] batch)
    {
        var signed = new SignedDirective[batch.Length];
        try
        {
            var leaves = new byte[batch.Length][];
            for (var i = 0; i < batch.Length; i++) leaves[i] = DirectiveBatch.LeafHash(batch[i].Payload);
            var (root, paths) = DirectiveBatch.Build(leaves);
            var signature = _key.Sign(DirectiveBatch.SignedMessage(root, batch.Length));
            for (var i = 0; i < batch.Length; i++)
                signed[i] = new SignedDirective(batch[i].Payload, _keyId, signature, paths[i], batch.Length, i, root);
        }
        catch (Exception e)
        {
            // A thread-pool work item must not throw: every waiting check-in gets the failure instead.
            foreach (var p in batch) p.TrySetException(e);
            return;
        }
        GatewayMetrics.DirectorSignatures.Add(1);
        GatewayMetrics.BatchedDirectives.Add(batch.Length);
        // Every directive is signed before the first answer's check-in continues here.
        for (var i = 0; i < batch.Length; i++) batch[i].TrySetResult(signed[i]);
    }
}
