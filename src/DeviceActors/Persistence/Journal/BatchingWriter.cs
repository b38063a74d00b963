using System.Threading.Channels;

namespace Orchestrator.DeviceActors.Persistence.Journal;

/// <summary>
/// Groups the writes of many persistent actors into few transactions: every <see cref="PendingWrite"/> (rows that
/// commit together) goes into one channel, and each of <c>writers</c> loops takes whatever is waiting (up to
/// <c>maxRowsPerBatch</c> rows, never splitting a write) and writes it as one transaction on its own
/// connection. Under load a batch is as large as the backlog, so the per-transaction cost (BEGIN, COMMIT, fsync, a
/// network round trip) is shared by many events; an idle journal writes a lone event at once.
/// If a batch fails, each of its writes is retried in its own transaction, so one bad write (e.g. a duplicate
/// sequence number from a second writer of the same persistence id) fails only its own actor.
/// </summary>
internal sealed class BatchingWriter
{
    private readonly Channel<PendingWrite> _queue = Channel.CreateUnbounded<PendingWrite>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = true });
    private readonly Task[] _loops;
    private readonly int _maxRows;
    private readonly Task _ready;
    private readonly Action<Exception, int> _onBatchFailed;
    private readonly JournalStore _store;

    /// <summary>Tries of one transaction that the database rolled back as transient (deadlock victim) before it counts as failed.</summary>
    private const int TransientAttempts = 4;

    /// <param name="store">The backend.</param>
    /// <param name="writers">Writer loops (connections); 1 for SQLite.</param>
    /// <param name="maxRowsPerBatch">Soft cap on journal rows per transaction.</param>
    /// <param name="ready">Completes when the tables exist; writes wait for it and fail with its error.</param>
    /// <param name="onBatchFailed">Told when a batch of more than one write failed and is retried one by one.</param>
    /// <param name="dedicatedThreads">
    /// Run each writer loop on its own thread (SQLite: its driver is synchronous, and a batch blocks in <c>fsync</c>
    /// for milliseconds; on a thread-pool thread that stalls the actors sharing the pool).
    /// </param>
    public BatchingWriter(JournalStore store, int writers, int maxRowsPerBatch, Task ready, Action<Exception, int> onBatchFailed, bool dedicatedThreads = false)
    {
        _store = store;
        ArgumentOutOfRangeException.ThrowIfLessThan(writers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRowsPerBatch, 1);
        _maxRows = maxRowsPerBatch;
        _ready = ready;
        _onBatchFailed = onBatchFailed;
        _loops = new Task[writers];
        for (var i = 0; i < writers; i++)
        {
            var writer = store.CreateWriter();
            if (dedicatedThreads)
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                new Thread(() =>
                {
                    try { Loop(writer, blocking: true).GetAwaiter().GetResult(); done.SetResult(); }
                    catch (Exception e) { done.SetException(e); }
                }) { IsBackground = true, Name = "device-journal-writer" }.Start();
                _loops[i] = done.Task;
            }
            else
            {
                _loops[i] = Task.Run(() => Loop(writer, blocking: false));
            }
        }
    }

    /// <summary>Queues <paramref name="write"/>; it is settled after its transaction, or at once if the writer is stopping.</summary>
    public void Enqueue(PendingWrite write)
    {
        if (!_queue.Writer.TryWrite(write))
            write.Settle(new InvalidOperationException("The device journal is stopping; the write was not stored."));
    }

    /// <summary>Stops taking writes; what is queued is still written. Completes when the writers closed their connections.</summary>
    public Task Complete()
    {
        _queue.Writer.TryComplete();
        return Task.WhenAll(_loops);
    }

    /// <param name="writer">This loop's connection.</param>
    /// <param name="blocking">Wait for work by blocking (dedicated thread) instead of awaiting (which resumes on the pool).</param>
    private async Task Loop(IJournalBatchWriter writer, bool blocking)
    {
        await using (writer)
        {
            var reader = _queue.Reader;
            Exception? notReady = null;
            try
            {
                // The tables exist before the first write. (A blocking loop must not await: it would resume on the pool.)
                if (blocking) _ready.GetAwaiter().GetResult();
                else await _ready;
            }
            catch (Exception e)
            {
                notReady = e;
            }
            var batch = new List<PendingWrite>();
            while (blocking ? reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult() : await reader.WaitToReadAsync())
            {
                batch.Clear();
                var rows = 0;
                while (rows < _maxRows && reader.TryRead(out var w))
                {
                    batch.Add(w);
                    rows += w.Rows.Length;
                }
                if (batch.Count == 0) continue; // another writer took them
                if (notReady is not null)
                {
                    SettleOnPool(batch.ToArray(), notReady);
                    continue;
                }
                var written = WriteIsolated(writer, batch);
                if (blocking) written.GetAwaiter().GetResult();
                else await written;
            }
        }
    }

    private async Task WriteIsolated(IJournalBatchWriter writer, List<PendingWrite> batch)
    {
        try
        {
            await WriteRetryingTransient(writer, batch);
            SettleOnPool(batch.ToArray(), null);
            return;
        }
        catch (Exception e) when (batch.Count > 1)
        {
            _onBatchFailed(e, batch.Count);
        }
        catch (Exception e)
        {
            SettleOnPool([batch[0]], e);
            return;
        }
        var single = new PendingWrite[1];
        foreach (var w in batch)
        {
            single[0] = w;
            Exception? error = null;
            try
            {
                await WriteRetryingTransient(writer, single);
            }
            catch (Exception e)
            {
                error = e;
            }
            SettleOnPool([w], error);
        }
    }

    // Writers of several nodes (and of one node) insert into the same tables and indexes, so PostgreSQL may pick one of
    // them as a deadlock victim; its transaction is rolled back whole, so sending it again is safe and is what the
    // database asks for. Persisting actors only see the error when it keeps happening.
    private async Task WriteRetryingTransient(IJournalBatchWriter writer, IReadOnlyList<PendingWrite> writes)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await writer.Write(writes, CancellationToken.None);
                return;
            }
            catch (Exception e) when (attempt < TransientAttempts && _store.IsTransient(e))
            {
                await Task.Delay(Random.Shared.Next(5, 20) * attempt);
            }
        }
    }

    // One work item per batch: the writer goes straight back to the next transaction (on SQLite it is the only one),
    // and the acknowledgements of a whole batch cost one thread-pool dispatch.
    private static void SettleOnPool(PendingWrite[] writes, Exception? error) =>
        ThreadPool.UnsafeQueueUserWorkItem(static s =>
        {
            foreach (var w in s.writes) w.Settle(s.error);
        }, (writes, error), preferLocal: false);
}
