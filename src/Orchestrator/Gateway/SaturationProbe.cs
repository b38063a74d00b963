using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// How long the node makes new work wait now, measured over and over by a dedicated thread (not a timer: timer callbacks
/// run ahead of the queues being measured): one measurement at a time, the next <see cref="AdmissionOptions.BusyProbeMilliseconds"/>
/// after the last one ended. What one measurement is, the subclass says: <see cref="ThreadPoolQueueProbe"/> (one work item
/// through the thread pool's global queue) or <see cref="LoopbackRequestProbe"/> (one HTTP request to the node itself).
/// </summary>
/// <remarks>
/// <see cref="CurrentWaitMilliseconds"/> is the larger of the last measurement and the time the one in progress has taken
/// so far, so a queue that stops moving is seen at once, not only when its measurement finally ends.
/// <see cref="SustainedWaitMilliseconds"/> is the smallest of the last <c>sustainedProbes</c> readings, the one in progress
/// counting as the newest once it has taken longer than the oldest of them: it is high only while every measurement over
/// that span waited, so with more than one reading a burst of work (a garbage collection, one request's fan-out) does
/// not read as saturation.
/// <para>
/// A calm pace (<see cref="AdmissionOptions.BusyProbeCalmMilliseconds"/>): once every reading for at least that long has
/// been below the calm threshold, the next probe starts that much later instead. Each probe wakes threads of the node
/// that would otherwise sleep (the probe's, the socket engine's, a pool worker, which then spins before it sleeps
/// again), so on a node with little to do probes at the full pace would be most of its CPU. The probe pauses no longer
/// than it has already seen the node calm, so a node that swings between busy and idle (a storm's waves) keeps the full
/// pace, and the first reading at or above the calm threshold restores it: a saturation that begins during a calm pause
/// is seen at most that pause later.
/// </para>
/// </remarks>
public abstract class SaturationProbe : IDisposable
{
    private readonly int _periodMilliseconds;
    private readonly int _calmPeriodMilliseconds;
    private readonly long _calmBelowTicks;
    private readonly long _calmForTicks;
    // Stopwatch timestamp of the first of the calm readings since the last reading that was not calm; 0 after one that was not.
    private long _calmSince;
    private readonly Histogram<double> _readings;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    // Stopwatch timestamp at which the measurement in progress started; 0 while none is.
    private long _startedAt;
    private long _lastWaitTicks;
    // The last completed readings, newest at _next - 1 (ring); written only by the probe's thread.
    private readonly long[] _waits;
    private int _next;
    // Smallest of all the ring's readings, and of all but the oldest (long.MaxValue when the ring holds one): the sustained
    // reading without and with the measurement in progress as the newest reading.
    private long _minAll;
    private long _minRecent = long.MaxValue;

    /// <summary>A probe reporting each reading to <paramref name="readings"/>; <see cref="Start"/> starts its thread.</summary>
    /// <param name="name">The probe thread's name.</param>
    /// <param name="periodMilliseconds">Pause between one measurement ending and the next starting.</param>
    /// <param name="sustainedProbes">Readings <see cref="SustainedWaitMilliseconds"/> takes the smallest of (at least 1).</param>
    /// <param name="readings">Histogram of every reading, in milliseconds.</param>
    /// <param name="pace">When the next probe starts (the calm pace; see the remarks).</param>
    protected SaturationProbe(string name, int periodMilliseconds, int sustainedProbes, Histogram<double> readings, ProbeCalmPace pace = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sustainedProbes, 1);
        _waits = new long[sustainedProbes];
        _periodMilliseconds = periodMilliseconds;
        _calmPeriodMilliseconds = Math.Max(periodMilliseconds, pace.PeriodMilliseconds);
        _calmBelowTicks = (long)(pace.BelowMilliseconds * Stopwatch.Frequency / 1000);
        _calmForTicks = _calmPeriodMilliseconds * Stopwatch.Frequency / 1000;
        _readings = readings;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
    }

    /// <summary>Starts the probe's thread (once; subclasses call it when their fields are set).</summary>
    protected void Start() => _thread.Start();

    /// <summary>
    /// One measurement, started at Stopwatch timestamp <paramref name="startedAt"/>: the ticks the work waited, or null when
    /// there is nothing to measure against yet (no reading is taken).
    /// </summary>
    protected abstract long? Measure(long startedAt, CancellationToken stop);

    /// <summary>Milliseconds the node makes new work wait now (see the remarks).</summary>
    public double CurrentWaitMilliseconds
    {
        get
        {
            var startedAt = Volatile.Read(ref _startedAt);
            var waiting = startedAt == 0 ? 0 : Stopwatch.GetTimestamp() - startedAt;
            return Stopwatch.GetElapsedTime(0, Math.Max(waiting, Volatile.Read(ref _lastWaitTicks))).TotalMilliseconds;
        }
    }

    /// <summary>
    /// Milliseconds every one of the last readings made work wait, at the least (see the remarks); 0 until as many
    /// readings were taken as it spans.
    /// </summary>
    public double SustainedWaitMilliseconds
    {
        get
        {
            var ticks = Volatile.Read(ref _minAll);
            var startedAt = Volatile.Read(ref _startedAt);
            if (startedAt != 0) ticks = Math.Max(ticks, Math.Min(Stopwatch.GetTimestamp() - startedAt, Volatile.Read(ref _minRecent)));
            return Stopwatch.GetElapsedTime(0, ticks).TotalMilliseconds;
        }
    }

    private void Run()
    {
        while (!_stop.IsCancellationRequested)
        {
            var startedAt = Stopwatch.GetTimestamp();
            Volatile.Write(ref _startedAt, startedAt);
            long? waited;
            try
            {
                waited = Measure(startedAt, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (waited is { } ticks) Record(ticks);
            Volatile.Write(ref _startedAt, 0);
            if (_stop.Token.WaitHandle.WaitOne(Calm(waited) ? _calmPeriodMilliseconds : _periodMilliseconds)) return;
        }
    }

    // Whether the next probe may wait the calm pause: this reading (none counts as calm) and every one for at least that
    // pause before it were calm.
    private bool Calm(long? waited)
    {
        var now = Stopwatch.GetTimestamp();
        if (waited is { } reading && reading >= _calmBelowTicks)
        {
            _calmSince = 0;
            return false;
        }
        if (_calmSince == 0) _calmSince = now;
        return now - _calmSince >= _calmForTicks;
    }

    private void Record(long waited)
    {
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
        _readings.Record(Stopwatch.GetElapsedTime(0, waited).TotalMilliseconds);
    }

    /// <summary>Ends a measurement in progress at once (the probe is stopping); by default it ends on its own.</summary>
    protected virtual void Interrupt()
    {
    }

    /// <summary>Stops the probe's thread.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        Interrupt();
        if (_thread.IsAlive) _thread.Join();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// The calm pace of a <see cref="SaturationProbe"/>: once every reading for at least <paramref name="PeriodMilliseconds"/>
/// has been below <paramref name="BelowMilliseconds"/> (no reading counts as calm), the next probe starts
/// <paramref name="PeriodMilliseconds"/> after the last instead of the probe's period. The default (0, 0) keeps the period
/// after every reading.
/// </summary>
/// <param name="PeriodMilliseconds">Pause between probes once the readings have been calm for that long (one shorter than the probe's period is the period).</param>
/// <param name="BelowMilliseconds">Readings below this are calm.</param>
public readonly record struct ProbeCalmPace(int PeriodMilliseconds, double BelowMilliseconds);
