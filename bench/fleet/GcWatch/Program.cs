// GcWatch PID [DETAIL_MS]: the .NET process PID's garbage collections as they happen, over EventPipe (no restart, no
// runtime settings): one line per collection (generation, kind, reason, duration) and per pause of the runtime longer
// than 20 ms, and for a pause longer than DETAIL_MS (default 100) the 60 GC events before it (suspensions, mark
// phases by root kind with the bytes each promoted, the heap's generation sizes, background GC phases), so a stall a
// benchmark measured can be named: which collection, why it ran, what it promoted. Times are the events' own.
// bench/fleet/gc-steady.sh runs it beside steady.sh.
using System.Diagnostics.Tracing;
using System.Globalization;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

if (args.Length < 1 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
{
    Console.Error.WriteLine("usage: GcWatch PID [DETAIL_MS]   (PID: a running .NET process of this user)");
    return 2;
}
var detailMs = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 100;

var providers = new[]
{
    new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, (long)ClrTraceEventParser.Keywords.GC),
    // The background GC's phases are private events.
    new EventPipeProvider("Microsoft-Windows-DotNETRuntimePrivate", EventLevel.Verbose, (long)ClrTraceEventParser.Keywords.GC),
};
using var session = new DiagnosticsClient(pid).StartEventPipeSession(providers, requestRundown: false);
using var source = new EventPipeEventSource(session.EventStream);
var recent = new Queue<string>();
void Note(TraceEvent e, string what)
{
    recent.Enqueue($"{e.TimeStamp:HH:mm:ss.fff} {e.TimeStampRelativeMSec,12:F1} t{e.ThreadID} {what}");
    while (recent.Count > 60) recent.Dequeue();
}

var started = new Dictionary<int, (double At, int Gen, GCReason Reason, GCType Type)>();
double suspendedAt = 0;
var clr = source.Clr;
clr.GCSuspendEEStart += e => { suspendedAt = e.TimeStampRelativeMSec; Note(e, $"SuspendEEStart {e.Reason}"); };
clr.GCSuspendEEStop += e => Note(e, "SuspendEEStop");
clr.GCRestartEEStart += e => Note(e, "RestartEEStart");
clr.GCStart += e => { started[e.Count] = (e.TimeStampRelativeMSec, e.Depth, e.Reason, e.Type); Note(e, $"GCStart #{e.Count} gen{e.Depth} {e.Type} {e.Reason}"); };
clr.GCStop += e =>
{
    Note(e, $"GCStop #{e.Count}");
    if (started.Remove(e.Count, out var s))
        Console.WriteLine($"{e.TimeStamp:HH:mm:ss.fff} gc#{e.Count} gen{s.Gen} {s.Type} {s.Reason} {e.TimeStampRelativeMSec - s.At:F1} ms");
};
clr.GCGlobalHeapHistory += e => Note(e, $"GlobalHeapHistory condemned gen{e.CondemnedGeneration} mode {e.PauseMode} ({e.GlobalMechanisms})");
clr.GCHeapStats += e => Note(e, $"HeapStats gen0 {e.GenerationSize0 >> 20} gen1 {e.GenerationSize1 >> 20} gen2 {e.GenerationSize2 >> 20} loh {e.GenerationSize3 >> 20} MiB, promoted gen0 {e.TotalPromotedSize0 >> 20} gen1 {e.TotalPromotedSize1 >> 20} MiB, handles {e.GCHandleCount}");
// Root kinds: 0 stacks, 1 finalizer queue, 2 handles, 3 older generations (cards), 6 dependent handles.
clr.GCMarkWithType += e => Note(e, $"Mark roots {e.Type} promoted {e.Promoted} B");
var background = new ClrPrivateTraceEventParser(source);
background.GCBGC1stNonCondStop += e => Note(e, "BGC first non-concurrent phase ended");
background.GCBGC1stConStop += e => Note(e, "BGC first concurrent phase ended");
background.GCBGC2ndNonConStart += e => Note(e, "BGC second non-concurrent phase");
background.GCBGC2ndNonConStop += e => Note(e, "BGC second non-concurrent phase ended");
background.GCBGC2ndConStart += e => Note(e, "BGC second concurrent phase");
background.GCBGC2ndConStop += e => Note(e, "BGC second concurrent phase ended");
background.GCBGCAllocWaitStart += e => Note(e, $"BGC allocation wait {e.Reason}");
background.GCBGCAllocWaitStop += e => Note(e, $"BGC allocation wait ended {e.Reason}");
clr.GCRestartEEStop += e =>
{
    Note(e, "RestartEEStop");
    var pause = e.TimeStampRelativeMSec - suspendedAt;
    if (pause > 20) Console.WriteLine($"{e.TimeStamp:HH:mm:ss.fff} PAUSE {pause:F1} ms");
    if (pause <= detailMs) return;
    foreach (var line in recent) Console.WriteLine("    " + line);
    recent.Clear();
};
Console.CancelKeyPress += (_, a) => { a.Cancel = true; session.Stop(); };
source.Process();
return 0;
