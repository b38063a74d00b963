using System.Diagnostics;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// How long work waits in the thread pool's global queue now: the queue where Kestrel's socket completions wait before a
/// request is parsed, in front of every endpoint filter. A dedicated thread (not a timer: timer callbacks run ahead of
/// that queue) queues one ordinary work item at a time to the global queue and measures how long it waited to run; it
/// queues the next one <see cref="AdmissionOptions.BusyProbeMilliseconds"/> after the last one ran.
/// </summary>
/// <remarks>
/// <see cref="CurrentWaitMilliseconds"/> is the larger of the last probe's wait and the time the probe still in the queue
/// has waited so far, so a queue that stops moving is seen at once, not only when its probe finally runs.
/// </remarks>
public sealed class ThreadPoolQueueProbe : IThreadPoolWorkItem, IDisposable
{
    private readonly int _periodMilliseconds;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _ran = new(false);
    private readonly CancellationTokenSource _stop = new();
    // Stopwatch timestamp at which the probe in the queue was queued; 0 while none is.
    private long _queuedAt;
    private long _lastWaitTicks;

    /// <summary>Starts the probe thread.</summary>
    /// <param name="periodMilliseconds">Pause between one probe running and the next being queued.</param>
    public ThreadPoolQueueProbe(int periodMilliseconds)
    {
        _periodMilliseconds = periodMilliseconds;
        _thread = new Thread(Run) { IsBackground = true, Name = "thread-pool queue probe" };
        _thread.Start();
    }

    /// <summary>Milliseconds the thread pool's global queue makes work wait now (see the remarks).</summary>
    public double CurrentWaitMilliseconds
    {
        get
        {
            var queuedAt = Volatile.Read(ref _queuedAt);
            var waiting = queuedAt == 0 ? 0 : Stopwatch.GetTimestamp() - queuedAt;
            return Stopwatch.GetElapsedTime(0, Math.Max(waiting, Volatile.Read(ref _lastWaitTicks))).TotalMilliseconds;
        }
    }

    private void Run()
    {
        while (!_stop.IsCancellationRequested)
        {
            _ran.Reset();
            Volatile.Write(ref _queuedAt, Stopwatch.GetTimestamp());
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            try
            {
                _ran.Wait(_stop.Token);
                GatewayMetrics.ThreadPoolQueueWait.Record(Stopwatch.GetElapsedTime(0, Volatile.Read(ref _lastWaitTicks)).TotalMilliseconds);
                _stop.Token.WaitHandle.WaitOne(_periodMilliseconds);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The probe's work item: records how long it waited.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        var queuedAt = Volatile.Read(ref _queuedAt);
        Volatile.Write(ref _lastWaitTicks, Stopwatch.GetTimestamp() - queuedAt);
        Volatile.Write(ref _queuedAt, 0);
        _ran.Set();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join();
        // _ran is not disposed: a probe still in the queue sets it when it runs.
        _stop.Dispose();
    }
}
