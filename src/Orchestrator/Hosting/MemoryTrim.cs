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
/// fleet's. A trim runs a few gen1 collections a second apart (each hands back free regions and pauses for the young
/// generations only), and only when the surplus is still large after them, free space inside gen2 that only compaction
/// returns, one full blocking compacting GC in <see cref="GCCollectionMode.Aggressive"/> mode, which pauses the process
/// for about one full mark of the live heap. So it runs only when the surplus is large, the node is quiet, and not more
/// often than <see cref="TrimMinIntervalSeconds"/>. Young collections count all of gen2 as heap, so what a burst left dead
/// there hides the surplus until a full collection runs; when the memory committed since the last full collection could
/// be that, a quiet check first runs one background full collection (at most once per <see cref="TrimMinIntervalSeconds"/>).
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
        description: "Trims the node ran to give back committed memory after a burst (how: ephemeral collections only, or ending in an aggressive full one)");
    private static readonly Counter<long> Released = Meter.CreateCounter<long>("orch_node_memory_trim_released",
        unit: "By", description: "Committed GC memory given back by the node's trims");
    private static readonly Counter<long> Probes = Meter.CreateCounter<long>("orch_node_memory_trim_probes",
        description: "Background full collections a quiet check ran because memory committed since the last full collection could be garbage (found: surplus, or none)");

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.TrimSurplusBytes == 0) return;
        var lastTrim = long.MinValue;
        var lastProbe = long.MinValue;
        var allocated = GC.GetTotalAllocatedBytes();
        var checkedAt = clock.GetTimestamp();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.TrimCheckSeconds), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = clock.GetTimestamp();
            var allocatedNow = GC.GetTotalAllocatedBytes();
            var rate = (allocatedNow - allocated) / Math.Max(0.001, clock.GetElapsedTime(checkedAt, now).TotalSeconds);
            (allocated, checkedAt) = (allocatedNow, now);
            if (rate >= options.TrimQuietBelowBytesPerSecond) continue;
            var minInterval = TimeSpan.FromSeconds(options.TrimMinIntervalSeconds);
            if (lastTrim != long.MinValue && clock.GetElapsedTime(lastTrim, now) < minInterval) continue;
            var info = GC.GetGCMemoryInfo();
            switch (Next(info.TotalCommittedBytes, info.HeapSizeBytes, info.FragmentedBytes, LastFullCollection().PromotedBytes, options.TrimSurplusBytes))
            {
                case TrimStep.None:
                    continue;
                case TrimStep.Probe:
                    if (lastProbe != long.MinValue && clock.GetElapsedTime(lastProbe, now) < minInterval) continue;
                    lastProbe = now;
                    info = await CollectFullInBackgroundAsync(stoppingToken);
                    var found = Surplus(info) >= options.TrimSurplusBytes;
                    Probes.Add(1, new KeyValuePair<string, object?>("found", found ? "surplus" : "none"));
                    log.LogInformation(
                        "Background full collection to see what the young collections since the last full one counted as heap: live heap {Heap:0.0} MiB, " +
                        "committed {Committed:0.0} MiB, surplus {Surplus:0.0} MiB ({Verdict}, Memory:TrimSurplusBytes {Threshold})",
                        (info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0, info.TotalCommittedBytes / 1048576.0, Surplus(info) / 1048576.0,
                        found ? "trimming" : "nothing to trim", options.TrimSurplusBytes);
                    if (!found) continue;
                    break;
            }
            lastTrim = now;
            var (after, steps, aggressive, longest) = await TrimAsync(info, stoppingToken);
            var released = Math.Max(0, info.TotalCommittedBytes - after.TotalCommittedBytes);
            Trims.Add(1, new KeyValuePair<string, object?>("how", aggressive ? "aggressive" : "ephemeral"));
            Released.Add(released);
            log.LogInformation(
                "Gave back {Released:0.0} MiB of GC memory held after a burst: committed {Before:0.0} -> {After:0.0} MiB, live heap {Heap:0.0} MiB, " +
                "allocating {Rate:0.0} MiB/s; {Steps} ephemeral collection(s){Aggressive}, longest pause {Pause} ms (Memory:TrimSurplusBytes {Threshold})",
                released / 1048576.0, info.TotalCommittedBytes / 1048576.0, after.TotalCommittedBytes / 1048576.0, after.HeapSizeBytes / 1048576.0,
                rate / 1048576.0, steps, aggressive ? " and one aggressive full collection" : "", longest, options.TrimSurplusBytes);
        }
    }

    /// <summary>What a quiet check does next (<see cref="Next"/>).</summary>
    internal enum TrimStep
    {
        /// <summary>Nothing: the surplus is under the bound, and could not be over it.</summary>
        None,
        /// <summary>Trim: the last collection's figures show the surplus.</summary>
        Trim,
        /// <summary>
        /// Collect in the background first: the surplus looks small only because the young collections since the last full
        /// one count everything in gen2 as heap, dead or not, and the memory committed since that full one could be it.
        /// </summary>
        Probe,
    }

    /// <summary>
    /// The quiet check's rule, from the last collection's committed, heap and fragmented bytes, the live heap the last full
    /// collection left (<paramref name="liveAtLastFull"/>, 0 if none ran) and the bound. Committed memory beyond what the
    /// last full collection left live is either real growth (new devices) or what a burst left dead in gen2; only a full
    /// collection tells them apart, so that much growth buys one background collection, not a trim.
    /// </summary>
    internal static TrimStep Next(long committed, long heap, long fragmented, long liveAtLastFull, long bound)
    {
        if (Surplus(committed, heap, fragmented) >= bound) return TrimStep.Trim;
        return committed - liveAtLastFull >= bound ? TrimStep.Probe : TrimStep.None;
    }

    // The newer of the last background and the last blocking full collection; either leaves the live heap as its promoted
    // bytes (Index 0 and nothing promoted when none ran).
    private static GCMemoryInfo LastFullCollection()
    {
        var background = GC.GetGCMemoryInfo(GCKind.Background);
        var blocking = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        return background.Index >= blocking.Index ? background : blocking;
    }

    // A background collection marks beside the check-ins (only its short start and end stop them) and sweeps what died,
    // so the figures after it show the live heap, and gen2's free space as fragmentation, which the trim then hands back.
    private async Task<GCMemoryInfo> CollectFullInBackgroundAsync(CancellationToken ct)
    {
        var before = LastFullCollection().Index;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: false);
        var started = clock.GetTimestamp();
        while (LastFullCollection().Index == before && clock.GetElapsedTime(started) < TimeSpan.FromSeconds(60))
            await Task.Delay(TimeSpan.FromMilliseconds(100), clock, ct);
        return GC.GetGCMemoryInfo();
    }

    /// <summary>Ephemeral collections handing back free regions, a second apart, at most this many per trim.</summary>
    internal const int EphemeralSteps = 5;

    // Free space inside the heap's regions (what a background collection swept) is surplus too: the heap size counts it,
    // a compacting collection gives it back.
    private static long Surplus(GCMemoryInfo info) => Surplus(info.TotalCommittedBytes, info.HeapSizeBytes, info.FragmentedBytes);

    private static long Surplus(long committed, long heap, long fragmented) => committed - (heap - fragmented);

    // Gentle first: every collection hands back some of the free regions the GC keeps committed, and a gen1 collection
    // pauses for the young generations only (milliseconds), where a full compacting one pauses for a mark of the whole
    // live heap (hundreds of milliseconds with a hundred thousand devices' state, every check-in waiting). Only what the
    // ephemeral ones cannot reach, free space inside gen2's regions, is left to the aggressive full collection.
    // Returns the GC's state after the last collection it ran.
    private async Task<(GCMemoryInfo After, int Steps, bool Aggressive, long LongestMs)> TrimAsync(GCMemoryInfo before, CancellationToken ct)
    {
        long longest = 0;
        var steps = 0;
        var info = before;
        while (steps < EphemeralSteps && Surplus(info) >= options.TrimSurplusBytes)
        {
            if (steps > 0) await Task.Delay(TimeSpan.FromSeconds(1), clock, ct);
            var pause = Stopwatch.StartNew();
            GC.Collect(1, GCCollectionMode.Forced, blocking: true);
            longest = Math.Max(longest, pause.ElapsedMilliseconds);
            steps++;
            info = GC.GetGCMemoryInfo();
        }
        var aggressive = Surplus(info) >= options.TrimSurplusBytes;
        if (aggressive)
        {
            var pause = Stopwatch.StartNew();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            longest = Math.Max(longest, pause.ElapsedMilliseconds);
            info = GC.GetGCMemoryInfo();
        }
        return (info, steps, aggressive, longest);
    }
}
