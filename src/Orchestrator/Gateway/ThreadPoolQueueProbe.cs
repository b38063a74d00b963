using System.Diagnostics;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// A <see cref="SaturationProbe"/> whose measurement is one ordinary work item through the thread pool's global queue:
/// how long it waited to run. It does not see the socket engine's own queue of ready connections (requests wait there
/// when the cores are saturated), which <see cref="LoopbackRequestProbe"/> does; this one needs no listener.
/// </summary>
public sealed class ThreadPoolQueueProbe : SaturationProbe, IThreadPoolWorkItem
{
    private readonly ManualResetEventSlim _ran = new(false);
    private long _queuedAt;
    private long _waited;

    /// <summary>Starts the probe thread.</summary>
    /// <param name="periodMilliseconds">Pause between one probe running and the next being queued.</param>
    /// <param name="sustainedProbes">Readings <see cref="SaturationProbe.SustainedWaitMilliseconds"/> takes the smallest of (at least 1).</param>
    /// <param name="pace">The calm pace (<see cref="ProbeCalmPace"/>; default: none).</param>
    public ThreadPoolQueueProbe(int periodMilliseconds, int sustainedProbes = 1, ProbeCalmPace pace = default)
        : base("thread-pool queue probe", periodMilliseconds, sustainedProbes, GatewayMetrics.ThreadPoolQueueWait, pace) => Start();

    /// <inheritdoc />
    protected override long? Measure(long startedAt, CancellationToken stop)
    {
        _ran.Reset();
        Volatile.Write(ref _queuedAt, startedAt);
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        _ran.Wait(stop);
        return Volatile.Read(ref _waited);
    }

    /// <summary>The probe's work item: records how long it waited.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        Volatile.Write(ref _waited, Stopwatch.GetTimestamp() - Volatile.Read(ref _queuedAt));
        _ran.Set();
    }

    // _ran is not disposed: a probe still in the queue sets it when it runs.
}
