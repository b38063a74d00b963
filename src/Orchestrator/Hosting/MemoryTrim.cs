using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// Section <c>Memory</c>: when the node hands back memory the .NET GC keeps committed after a burst of work.
/// </summary>
/// <remarks>
/// After a burst (a check-in wave, a storm, a recovery) the workstation GC keeps the regions it allocated into committed
/// although the live heap is a fraction of them, and it returns them to the kernel only a little at each later GC; an
/// idle fleet allocates so little that those GCs are minutes apart, so RSS kept the burst's size instead of the
/// fleet's. A full blocking compacting GC in <see cref="GCCollectionMode.Aggressive"/> mode decommits them at once; it
/// pauses the process for about the time of one full mark of the live heap, so it runs only when the surplus is large,
/// the node is quiet, and not more often than <see cref="TrimMinIntervalSeconds"/>.
/// </remarks>
public sealed class MemoryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Memory";

    /// <summary>
    /// Committed GC memory beyond the live heap (bytes; the heap's free space counts as surplus) from which the node gives
    /// it back; 0 turns trimming off.
    /// Default 256 MiB.
    /// </summary>
    public long TrimSurplusBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>How often the node compares the GC's committed memory with its live heap (seconds, default 30).</summary>
    public int TrimCheckSeconds { get; set; } = 30;

    /// <summary>Fewest seconds between two trims (default 300): bounds how often a trim's pause can be paid.</summary>
    public int TrimMinIntervalSeconds { get; set; } = 300;

    /// <summary>
    /// The node counts as quiet, and may trim, while it allocated less than this many bytes per second since the last
    /// check (default 32 MiB/s: an idle fleet of a million devices at a 5-minute cadence allocates a fraction of it; a
    /// burst at a node's full check-in rate allocates more).
    /// </summary>
    public long TrimQuietBelowBytesPerSecond { get; set; } = 32L * 1024 * 1024;

    /// <summary>
    /// Run the GC in <see cref="System.Runtime.GCLatencyMode.SustainedLowLatency"/> (default on): full collections run in
    /// the background beside the check-ins instead of stopping them, unless memory is short. Off, the runtime may choose
    /// a blocking full collection, which with a hundred thousand devices' state stops every check-in for a few hundred
    /// milliseconds. Has no effect without concurrent GC (<c>DOTNET_gcConcurrent=0</c>).
    /// </summary>
    public bool SustainedLowLatency { get; set; } = true;

    /// <summary>Problems with the values, each naming the key and a valid value.</summary>
    public IEnumerable<string> Validate()
    {
        if (TrimSurplusBytes < 0)
            yield return $"Memory:TrimSurplusBytes {TrimSurplusBytes} is negative; use 0 (no trimming) or a byte count, e.g. 268435456 (256 MiB).";
        if (TrimCheckSeconds is < 1 or > 86_400)
            yield return $"Memory:TrimCheckSeconds {TrimCheckSeconds} is out of range; use 1..86400 (default 30).";
        if (TrimMinIntervalSeconds is < 1 or > 86_400)
            yield return $"Memory:TrimMinIntervalSeconds {TrimMinIntervalSeconds} is out of range; use 1..86400 (default 300).";
        if (TrimQuietBelowBytesPerSecond < 1)
            yield return $"Memory:TrimQuietBelowBytesPerSecond {TrimQuietBelowBytesPerSecond} is out of range; use a positive byte rate, e.g. 33554432 (32 MiB/s).";
    }
}

/// <summary>
/// Gives back the GC's committed surplus after a burst (see <see cref="MemoryOptions"/>): counted on <c>/metrics</c> as
/// <c>orch_node_memory_trims_total</c> and <c>orch_node_memory_trim_released_bytes_total</c>, and logged with the pause.
/// </summary>
public sealed class MemoryTrim(MemoryOptions options, TimeProvider clock, ILogger<MemoryTrim> log) : BackgroundService
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Orchestrator.Node";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Trims = Meter.CreateCounter<long>("orch_node_memory_trims",
        description: "Aggressive GCs the node ran to give back committed memory after a burst");
    private static readonly Counter<long> Released = Meter.CreateCounter<long>("orch_node_memory_trim_released",
        unit: "By", description: "Committed GC memory given back by the node's trims");

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.TrimSurplusBytes == 0) return;
        var lastTrim = long.MinValue;
        var allocated = GC.GetTotalAllocatedBytes();
        var checkedAt = clock.GetTimestamp();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.TrimCheckSeconds), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = clock.GetTimestamp();
            var allocatedNow = GC.GetTotalAllocatedBytes();
            var rate = (allocatedNow - allocated) / Math.Max(0.001, clock.GetElapsedTime(checkedAt, now).TotalSeconds);
            (allocated, checkedAt) = (allocatedNow, now);
            var info = GC.GetGCMemoryInfo();
            // Free space inside the heap's regions (what a background collection swept) is surplus too: the heap size
            // counts it, a compacting collection gives it back.
            var surplus = info.TotalCommittedBytes - (info.HeapSizeBytes - info.FragmentedBytes);
            if (surplus < options.TrimSurplusBytes || rate >= options.TrimQuietBelowBytesPerSecond) continue;
            if (lastTrim != long.MinValue && clock.GetElapsedTime(lastTrim, now) < TimeSpan.FromSeconds(options.TrimMinIntervalSeconds)) continue;
            lastTrim = now;
            var pause = Stopwatch.StartNew();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            pause.Stop();
            var after = GC.GetGCMemoryInfo();
            var released = Math.Max(0, info.TotalCommittedBytes - after.TotalCommittedBytes);
            Trims.Add(1);
            Released.Add(released);
            log.LogInformation(
                "Gave back {Released:0.0} MiB of GC memory held after a burst: committed {Before:0.0} -> {After:0.0} MiB, live heap {Heap:0.0} MiB, " +
                "allocating {Rate:0.0} MiB/s, pause {Pause} ms (Memory:TrimSurplusBytes {Threshold})",
                released / 1048576.0, info.TotalCommittedBytes / 1048576.0, after.TotalCommittedBytes / 1048576.0, after.HeapSizeBytes / 1048576.0,
                rate / 1048576.0, pause.ElapsedMilliseconds, options.TrimSurplusBytes);
        }
    }
}
