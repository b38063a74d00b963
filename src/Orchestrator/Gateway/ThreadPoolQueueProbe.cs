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
/// <see cref="SustainedWaitMilliseconds"/> is the smallest of the last <c>sustainedProbes</c> readings, the probe still in
/// the queue counting as the newest once it has waited longer than the oldest of them: it is high only while every probe
/// over that span waited, so a burst of work (a garbage collection, one request's fan-out) does not read as saturation.
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
    // The last completed waits, newest at _next - 1 (ring); written only by the probe's work item, one at a time.
    private readonly long[] _waits;
    private int _next;
    // Smallest of all the ring's waits, and of all but the oldest (long.MaxValue when the ring holds one): the sustained
    // reading without and with the probe in the queue as the newest reading.
    private long _minAll;
    private long _minRecent = long.MaxValue;

    /// <summary>Starts the probe thread.</summary>
    /// <param name="periodMilliseconds">Pause between one probe running and the next being queued.</param>
    /// <param name="sustainedProbes">Readings <see cref="SustainedWaitMilliseconds"/> takes the smallest of (at least 1).</param>
    public ThreadPoolQueueProbe(int periodMilliseconds, int sustainedProbes = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sustainedProbes, 1);
        _waits = new long[sustainedProbes];
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

    /// <summary>
    /// Milliseconds every one of the last readings made work wait, at the least (see the remarks); 0 until as many probes
    /// ran as it spans.
    /// </summary>
    public double SustainedWaitMilliseconds
    {
        get
        {
            var ticks = Volatile.Read(ref _minAll);
            var queuedAt = Volatile.Read(ref _queuedAt);
            if (queuedAt != 0) ticks = Math.Max(ticks, Math.Min(Stopwatch.GetTimestamp() - queuedAt, Volatile.Read(ref _minRecent)));
            return Stopwatch.GetElapsedTime(0, ticks).TotalMilliseconds;
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
        var waited = Stopwatch.GetTimestamp() - queuedAt;
        Volatile.Write(ref _lastWaitTicks, waited);
        _waits[_next] = waited;
        _next = (_next + 1) % _waits.Length;
        // _next is now the oldest reading: every other one is among the recent.
        long all = long.MaxValue, recent = long.MaxValue;
        for (var i = 0; i < _waits.Length; i++)
        {
            all = Math.Min(all, _waits[i]);
            if (i != _next) recent = Math.Min(recent, _waits[i]);
        }
        Volatile.Write(ref _minRecent, recent);
        Volatile.Write(ref _minAll, all);
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
