using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Orchestrator.Bench.DeviceActors;

/// <summary>
/// Diagnostic (ORCH_BENCH_ALLOC=1, off in recorded runs): the runtime's allocation ticks (one per ~100 KB allocated,
/// naming the type that crossed the mark) summed by type, so the biggest allocators of a phase show up without a
/// profiler.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private readonly ConcurrentDictionary<string, long> _bytes = new();
    private volatile bool _on;

    public static AllocationSampler? StartIfRequested() =>
        Environment.GetEnvironmentVariable("ORCH_BENCH_ALLOC") == "1" ? new AllocationSampler() : null;

    public void Begin() { _bytes.Clear(); _on = true; }

    public void Print(string phase, long events)
    {
        _on = false;
        Console.WriteLine($"   sampled allocations in the {phase}, bytes per event by type:");
        foreach (var (type, bytes) in _bytes.OrderByDescending(kv => kv.Value).Take(30))
            Console.WriteLine($"     {bytes / events,6}  {type}");
    }

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword; AllocationTick is verbose
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (!_on || e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.PayloadNames is null) return;
        var type = e.Payload![e.PayloadNames.IndexOf("TypeName")] as string ?? "?";
        var amount = Convert.ToInt64(e.Payload[e.PayloadNames.IndexOf("AllocationAmount64")]);
        _bytes.AddOrUpdate(type, amount, (_, v) => v + amount);
    }
}
