#!/usr/bin/env python3
# Shares of a node trace by part of the check-in path (the trace table of bench/results/fleet-steady.md).
# usage: trace_buckets.py TRACE.speedscope.json
# TRACE from: dotnet-trace collect -p <node pid> --profile dotnet-sampled-thread-time,gc-collect --format Speedscope
# Samples of threads blocked in a wait are left out; every other sample goes to the first part whose frame pattern
# matches its stack (most specific first), so runnable threads waiting for a core count as well.
import json,collections,sys,re
d=json.load(open(sys.argv[1]))
frames=[f['name'] for f in d['shared']['frames']]
WAIT=re.compile(r'WaitOneNoCheck|LowLevelLifoSemaphore|SocketAsyncEngine.EventLoop|Monitor.Wait|Thread.Sleep|WaitHandle.Wait|LowLevelMonitor|TimerQueue.TimerThread|ManualResetEventSlim.Wait|SemaphoreSlim.Wait|Thread.Join|WaitSubsystem|Task.Wait|Interop\+Sys.WaitForSocketEvents|GetQueuedCompletion|FileSystem.Watcher!Interop\+Sys.Read|ConsoleLoggerProcessor|BlockingCollection|Channels.*WaitToRead|PollGC')
# order matters: first match wins (most specific first)
B=[
 ('GC (PollGC/finalizers/allocation slow path)', r'PollGC|GC\.RunFinalizers|GCHeap|Alloc.*SlowPath|RhpNew|JIT_New'),
 # NSec's call into libsodium is inlined into DirectorSigner.Sign: its time shows as the leaf right under that frame.
 ('Ed25519 sign (NSec/libsodium)', r'NSec|ReleaseSigningKey\.Sign|SignatureAlgorithm\.Sign|DirectorSigner\.Sign[^\n]*\n(CPU_TIME|UNMANAGED_CODE_TIME)$'),
 ('directive payload+envelope JSON/base64', r'DirectorSigner|SignedEnvelope|Directive\.ToPayload'),
 ('HMAC verify + canonical string', r'DeviceRequestSignature\.(Verify|Compute|Canonical|FromBase64Url)'),
 ('credential cache', r'DeviceCredentialStore|BitFaster'),
 ('body read + SHA-256 + header parse', r'DeviceAuthentication|DeviceRequestSignature'),
 ('request JSON parse', r'HttpProblems.*(ReadJson|ParseJson)|JsonSerializer.*Deserialize|DeserializeAsync|ReadAsJson|ReadFromJson'),
 ('validation', r'DeviceRequestValidation'),
 ('row table (TryAnswer)', r'DeviceRowTable|DeviceRow\.|IdleCheckIn'),
 ('installed-release lookup (stat index.json)', r'InstalledReleaseInspector'),
 ('channels (cache + stat)', r'ChannelsAsync|StoreChannelSeeder|ChannelCache'),
 ('CheckIn command build', r'Messages\.Devices\.CheckIn|DeviceIdRules|DeviceAttributeRules'),
 ('response JSON write', r'JsonHttpResult|HttpResultsHelper|WriteAsJson|JsonSerializer\.Serialize|Utf8JsonWriter'),
 ('admission filter', r'CheckInAdmission|RecentCheckIns|ConcurrencyLimiter'),
 ('metrics (OTel/Meter)', r'Diagnostics\.Metrics|OpenTelemetry|HostingMetrics|KestrelMetrics'),
 ('logging', r'Extensions\.Logging|ILogger'),
 ('gateway/endpoint other', r'ShardedDeviceGateway|DeviceEndpoints|RequestDelegateFactory|EndpointFilter|lambda_method'),
 ('routing/middleware', r'Routing|EndpointMiddleware|AuditMiddleware|HostingApplication'),
 ('socket send/receive', r'Sockets|Interop\+Sys\.(Send|Receive|Read|Write)'),
 ('Kestrel HTTP/1.1 parse+write', r'Kestrel|Http1|HttpParser|Pipelines'),
 ('Akka (actors, sharding, journal)', r'Akka|linq2db|Sqlite'),
 ('thread pool workers looking for work (spinning before they sleep)', r'WorkerThreadStart\(\)\n(CPU_TIME|UNMANAGED_CODE_TIME)$'),
 ('thread pool / async machinery', r'ThreadPool|AsyncMethodBuilder|AsyncStateMachine|ExecutionContext|TaskScheduler|Task\.'),
]
B=[(n,re.compile(p)) for n,p in B]
cnt=collections.Counter(); tot=0; waits=0; other=collections.Counter()
for p in d['profiles']:
    stack=[]; last=None
    for e in p['events']:
        t=e['at']
        if stack and last is not None and t>last:
            names=[frames[i] for i in stack]; dt=t-last
            s='\n'.join(names)
            if names[-1]=='UNMANAGED_CODE_TIME' and WAIT.search('\n'.join(names[-5:])): waits+=dt
            elif WAIT.search('\n'.join(names[-3:])) and 'PollGC' not in s: waits+=dt
            else:
                tot+=dt
                for n,r in B:
                    if r.search(s): cnt[n]+=dt; break
                else:
                    cnt['other']+=dt; other[names[-2] if len(names)>1 else names[-1]]+=dt
        last=t
        if e['type']=='O': stack.append(e['frame'])
        else:
            if stack and stack[-1]==e['frame']: stack.pop()
            elif e['frame'] in stack: stack.remove(e['frame'])
print(f"active thread time {tot/1000:.1f} s (waits {waits/1000:.1f} s)")
for n,v in cnt.most_common(): print(f"{100*v/tot:5.1f}%  {n}")
print('--- other, top')
for k,v in other.most_common(12): print(f"{100*v/tot:5.1f}% {k[:150]}")
