using System.Text.Json;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Trust;

/// <summary>
/// Signs directive payloads in batches (docs/protocol.md "Directive"): one Ed25519 signature over the Merkle root of
/// every payload that is ready, each answer carrying its own payload, the root signature and its inclusion path.
/// No timer: a payload that finds no signature in progress is signed once the work already queued on the thread pool
/// has run (at once on an idle node, a batch of one); payloads that arrive meanwhile, or while a signature is being
/// computed, join it or form the next batch (at most <see cref="MaxSize"/>), which the first of them signs as soon as
/// the running batch is done.
/// </summary>
public sealed class DirectiveBatcher
{
    private readonly ReleaseSigningKey _key;
    private readonly string _keyId;
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private bool _busy; // a caller is signing; invariant: false implies the queue is empty

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

    private sealed class Pending(byte[] payload)
    {
        public readonly byte[] Payload = payload;
        public readonly TaskCompletionSource<byte[]?> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public byte[]? Result;
    }

    /// <summary>
    /// The envelope of <paramref name="payload"/> as UTF-8 JSON (<see cref="SignedEnvelopeWriter"/>): its bytes, the batch
    /// root's signature and its inclusion proof.
    /// </summary>
    public async ValueTask<byte[]> SignAsync(byte[] payload)
    {
        var me = new Pending(payload);
        bool lead;
        lock (_gate)
        {
            _queue.Enqueue(me);
            lead = !_busy;
            _busy = true;
        }
        if (!lead)
        {
            // Completed with the envelope when a leader signed a batch holding this payload, or with null: lead now.
            if (await me.Done.Task.ConfigureAwait(false) is { } signed) return signed;
        }
        else
        {
            // The work already queued on the thread pool runs before the signature: under load that is check-ins about
            // to ask for one, which join this batch; an idle node comes straight back. The wait follows the load, no timer.
            await Task.Yield();
        }
        Pending? next = null;
        try
        {
            // The leader's own payload is first in the queue (the previous leader handed over to it, or the queue was
            // empty), so the first batch holds it.
            while (me.Result is null) SignNext();
        }
        finally
        {
            lock (_gate)
            {
                if (_queue.Count == 0) _busy = false;
                else next = _queue.Peek();
            }
            next?.Done.TrySetResult(null);
        }
        return me.Result;
    }

    private void SignNext()
    {
        Pending[] batch;
        lock (_gate)
        {
            batch = new Pending[Math.Min(_queue.Count, MaxSize)];
            for (var i = 0; i < batch.Length; i++) batch[i] = _queue.Dequeue();
        }
        try
        {
            var leaves = new byte[batch.Length][];
            for (var i = 0; i < batch.Length; i++) leaves[i] = DirectiveBatch.LeafHash(batch[i].Payload);
            var (root, paths) = DirectiveBatch.Build(leaves);
            var signature = _key.Sign(DirectiveBatch.SignedMessage(root, batch.Length));
            GatewayMetrics.DirectorSignatures.Add(1);
            GatewayMetrics.BatchedDirectives.Add(batch.Length);
            for (var i = 0; i < batch.Length; i++)
            {
                var p = batch[i];
                p.Result = EnvelopeWriting.Write(p.Payload, _keyId, signature, paths[i], batch.Length, i, root);
                p.Done.TrySetResult(p.Result);
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch) p.Done.TrySetException(e);
            throw;
        }
    }
}
