using System.Diagnostics;
using System.Diagnostics.Metrics;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// The probe's pace: once the readings have been calm (below the calm threshold) for the calm pause, the next probe waits
/// that pause, and the first reading at or above the threshold brings the probe's own period back. A scripted probe
/// returns the reading the test sets, at once, so only the pauses decide how many probes a second takes.
/// </summary>
public sealed class SaturationProbeTests : IDisposable
{
    private readonly Meter _meter = new("saturation-probe-tests");

    private sealed class ScriptedProbe : SaturationProbe
    {
        public volatile int ReadingMilliseconds;
        public int Probes;

        public ScriptedProbe(Histogram<double> readings, int periodMilliseconds, ProbeCalmPace pace)
            : base("scripted probe", periodMilliseconds, 1, readings, pace) => Start();

        protected override long? Measure(long startedAt, CancellationToken stop)
        {
            Interlocked.Increment(ref Probes);
            return ReadingMilliseconds * Stopwatch.Frequency / 1000;
        }
    }

    private static int ProbesIn(ScriptedProbe probe, int milliseconds)
    {
        var from = Volatile.Read(ref probe.Probes);
        Thread.Sleep(milliseconds);
        return Volatile.Read(ref probe.Probes) - from;
    }

    [Fact]
    public void Calm_readings_pace_the_probe_at_the_calm_pause_and_a_busy_reading_restores_its_period()
    {
        using var probe = new ScriptedProbe(_meter.CreateHistogram<double>("calm"), 1, new ProbeCalmPace(250, 20));
        // The first 250 ms of calm readings (0 ms < 20 ms) at the period; then one probe per 250 ms, about 4 in a second.
        var first = ProbesIn(probe, 200);
        Assert.True(first >= 8, $"{first} probes in the first 200 ms: the node has not been calm for the calm pause yet");
        Thread.Sleep(300);
        Assert.InRange(ProbesIn(probe, 1_000), 1, 6);

        probe.ReadingMilliseconds = 30;
        // The probe in its calm pause takes the busy reading at the next probe, and then probes every millisecond.
        Thread.Sleep(300);
        var busy = ProbesIn(probe, 1_000);
        Assert.True(busy >= 40, $"{busy} probes in a second of readings above the calm threshold (the period is 1 ms)");
        Assert.Equal(30, probe.CurrentWaitMilliseconds, 0.5);

        // Calm again: the period for 250 ms more, then the calm pause.
        probe.ReadingMilliseconds = 0;
        Thread.Sleep(600);
        Assert.InRange(ProbesIn(probe, 1_000), 1, 6);
    }

    [Fact]
    public void Without_a_calm_pace_every_reading_is_followed_by_the_period()
    {
        using var probe = new ScriptedProbe(_meter.CreateHistogram<double>("no-calm"), 1, default);
        var probes = ProbesIn(probe, 1_000);
        Assert.True(probes >= 40, $"{probes} probes in a second with a 1 ms period");
    }

    public void Dispose() => _meter.Dispose();
}
