using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Node.Hosting;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Faults;

/// <summary>
/// The node process gives back GC memory held beyond its live heap (<see cref="MemoryOptions"/>): only while the surplus
/// is above <c>Memory:TrimSurplusBytes</c>, only while it is quiet, and counted on its own /metrics. The thresholds are
/// set so each case is decided by one setting: any surplus at all, any allocation at all, the default surplus.
/// </summary>
public sealed class MemoryTrimTests(ITestOutputHelper output)
{
    private const string Trims = "orch_node_memory_trims_total";
    private const string Released = "orch_node_memory_trim_released_bytes_total";
    private const string Committed = "dotnet_gc_last_collection_memory_committed_size_bytes";

    [Fact]
    public async Task A_node_with_surplus_trims_it_at_most_once_per_interval_and_reports_what_it_gave_back()
    {
        var (metrics, seconds) = await MetricsAfterAsync(TimeSpan.FromSeconds(30), m => PrometheusText.Sum(m, Trims) >= 2,
            "--Memory:TrimSurplusBytes=1", "--Memory:TrimCheckSeconds=1", "--Memory:TrimMinIntervalSeconds=2");
        Assert.True(PrometheusText.Sum(metrics, Trims) >= 2, $"two trims within 30 s:\n{Lines(metrics)}");
        Assert.True(PrometheusText.Sum(metrics, Trims) <= 1 + seconds / 2, $"at most one trim per 2 s in {seconds:0.0} s:\n{Lines(metrics)}");
        // A freshly started node holds committed, empty regions beyond its heap, so its first trim gives some back.
        Assert.True(PrometheusText.Sum(metrics, Released) > 0, $"{Released} after the trims:\n{Lines(metrics)}");
        // A 1-byte bound is never met by the gen1 collections alone, so every trim ends in the aggressive full collection.
        Assert.True(PrometheusText.Sum(metrics, Trims, "how=\"aggressive\"") >= 2, $"trims ending in an aggressive collection:\n{Lines(metrics)}");
        Assert.True(PrometheusText.Sum(metrics, Committed) > 0, $"{Committed} on /metrics:\n{Lines(metrics)}");
    }

    [Fact]
    public async Task A_node_that_is_allocating_or_whose_surplus_is_under_the_bound_does_not_trim()
    {
        // Never quiet: requests without pause make every check see allocation (a node left alone may allocate nothing the
        // runtime's counter shows within one check), so even the smallest surplus is left alone.
        var (busy, _) = await MetricsAfterAsync(TimeSpan.FromSeconds(5), _ => false, busy: true,
            "--Memory:TrimSurplusBytes=1", "--Memory:TrimCheckSeconds=1", "--Memory:TrimMinIntervalSeconds=1",
            "--Memory:TrimQuietBelowBytesPerSecond=1");
        Assert.Equal(0, PrometheusText.Sum(busy, Trims));
        // The default 256 MiB surplus: a node that has done nothing holds far less.
        var (idle, _) = await MetricsAfterAsync(TimeSpan.FromSeconds(5), _ => false, "--Memory:TrimCheckSeconds=1");
        Assert.Equal(0, PrometheusText.Sum(idle, Trims));
    }

    private Task<(string Metrics, double Seconds)> MetricsAfterAsync(TimeSpan wait, Func<string, bool> done, params string[] settings) =>
        MetricsAfterAsync(wait, done, busy: false, settings);

    // Starts a node with the settings, reads /metrics until `done` or `wait` has passed, and returns the last read and
    // the seconds since the node's process was started. With `busy`, the node is sent requests without pause from the
    // moment it is ready until the last read.
    private async Task<(string Metrics, double Seconds)> MetricsAfterAsync(TimeSpan wait, Func<string, bool> done, bool busy, params string[] settings)
    {
        using var rig = new NodeProcessRig();
        var started = System.Diagnostics.Stopwatch.StartNew();
        await rig.StartAsync(settings);
        using var stop = new CancellationTokenSource();
        var load = busy ? Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                try { await rig.Http.GetStringAsync("health/ready", stop.Token); }
                catch (OperationCanceledException) { }
        }) : Task.CompletedTask;
        var deadline = DateTime.UtcNow + wait;
        string metrics;
        do
        {
            await Task.Delay(500);
            metrics = await rig.Http.GetStringAsync("metrics");
        } while (!done(metrics) && DateTime.UtcNow < deadline);
        await stop.CancelAsync();
        await load;
        output.WriteLine($"{string.Join(' ', settings)}:\n{Lines(metrics)}");
        return (metrics, started.Elapsed.TotalSeconds);
    }

    private static string Lines(string metrics) =>
        string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("orch_node_memory", StringComparison.Ordinal) || l.StartsWith("dotnet_gc_last_collection", StringComparison.Ordinal)));
}
