// AllocWatch PID SECONDS OUT.nettrace [DEPTH]: where a running .NET process allocates, over EventPipe (no restart, no
// runtime settings). Collects the runtime's allocation ticks (one event per ~100 KB allocated, with the type of the
// object that crossed the mark and its managed stack) for SECONDS into OUT.nettrace, then prints the sampled bytes by
// type and by allocation site (the type and DEPTH managed frames, default 4). AllocWatch 0 0 OUT.nettrace [DEPTH] reads
// a trace again. A tick is taken when an allocation context is refilled, so objects that fill one are over-represented:
// the shares rank the sites; the bytes per request come from the process's own counter (ColdBench's "node allocated").
// bench/fleet/alloc-cold.sh runs it on a node's warm fast path.
using System.Diagnostics.Tracing;
using System.Globalization;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

if (args.Length < 3 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
    || !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
{
    Console.Error.WriteLine("usage: AllocWatch PID SECONDS OUT.nettrace [DEPTH]   (PID 0: read OUT.nettrace again)");
    return 2;
}
var path = args[2];
var depth = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 4;
if (pid > 0)
{
    // Stacks need the JIT's method events (and the rundown at the end) to be named.
    var keywords = ClrTraceEventParser.Keywords.GC | ClrTraceEventParser.Keywords.Stack | ClrTraceEventParser.Keywords.Loader
                   | ClrTraceEventParser.Keywords.Jit | ClrTraceEventParser.Keywords.JitTracing;
    var providers = new[] { new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, (long)keywords) };
    using var session = new DiagnosticsClient(pid).StartEventPipeSession(providers, requestRundown: true);
    await using (var file = File.Create(path))
    {
        var copy = session.EventStream.CopyToAsync(file);
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        session.Stop();
        await copy;
    }
}

using var log = new TraceLog(TraceLog.CreateFromEventPipeDataFile(path));
var byType = new Dictionary<string, double>();
var bySite = new Dictionary<string, double>();
double total = 0;
foreach (var e in log.Events)
{
    if (e is not GCAllocationTickTraceData tick) continue;
    var bytes = (double)tick.AllocationAmount64;
    total += bytes;
    byType[tick.TypeName] = byType.GetValueOrDefault(tick.TypeName) + bytes;
    var frames = new List<string>();
    for (var frame = e.CallStack(); frame is not null && frames.Count < depth; frame = frame.Caller)
    {
        var name = frame.CodeAddress.FullMethodName;
        if (!string.IsNullOrEmpty(name)) frames.Add(name.Length > 100 ? name[..100] : name);
    }
    var site = tick.TypeName + " <- " + string.Join(" <- ", frames);
    bySite[site] = bySite.GetValueOrDefault(site) + bytes;
}
if (total == 0)
{
    Console.Error.WriteLine($"{path}: no allocation ticks (did the process allocate, and is it a .NET process of this user?)");
    return 1;
}
Console.WriteLine($"sampled {total / 1e6:0.0} MB in allocation ticks");
Console.WriteLine("--- by type");
foreach (var (type, bytes) in byType.OrderByDescending(x => x.Value).Take(30)) Console.WriteLine($"{100 * bytes / total,6:0.0} %  {type}");
Console.WriteLine("--- by site");
foreach (var (site, bytes) in bySite.OrderByDescending(x => x.Value).Take(40)) Console.WriteLine($"{100 * bytes / total,6:0.0} %  {site}");
return 0;
