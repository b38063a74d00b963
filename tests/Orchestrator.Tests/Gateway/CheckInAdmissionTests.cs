using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Tests.Support;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// A check-in storm beyond <c>Admission:MaxConcurrentCheckIns</c> + <c>Admission:MaxQueuedCheckIns</c> is answered 503
/// <c>node_busy</c> with Retry-After at once, reaches no device actor, and the node keeps answering the admitted ones.
/// </summary>
public sealed class CheckInAdmissionTests
{
    [Fact]
    public async Task Check_ins_beyond_the_limit_and_the_queue_are_refused_at_once_with_retry_after_and_the_rest_are_answered()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "2",
            ["Admission:MaxQueuedCheckIns"] = "3",
            ["Admission:RetryAfterSeconds"] = "5",
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
        });
        node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var secrets = new Dictionary<string, string>();
        for (var i = 0; i < 10; i++) secrets[$"storm-{i}"] = await node.ProvisionAsync($"storm-{i}");

        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Devices.Hold = hold.Task;
        async Task<(HttpStatusCode Status, string? Error, string? RetryAfter, bool Close)> CheckInAsync(string device)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{device}/check-in")
            {
                Content = JsonContent.Create(new CheckInRequest("acme", 1, "digest-1", null, "1.0.0")),
            };
            DeviceSigning.SignAs(req, device, secrets[device]);
            using var res = await node.Http.SendAsync(req);
            var error = res.IsSuccessStatusCode ? null : (await res.Content.ReadFromJsonAsync<ProblemResponse>())?.Error;
            return (res.StatusCode, error, res.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                res.Headers.ConnectionClose == true);
        }

        // Two are admitted and held inside the device actor; three wait; the other five are refused without waiting.
        var storm = secrets.Keys.Select(CheckInAsync).ToList();
        var refused = new List<(HttpStatusCode Status, string? Error, string? RetryAfter, bool Close)>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (refused.Count < 5 && DateTime.UtcNow < deadline)
        {
            await Task.WhenAny(storm.Where(t => !t.IsCompleted).Append(Task.Delay(200)));
            refused = storm.Where(t => t.IsCompleted).Select(t => t.Result).ToList();
        }
        Assert.Equal(5, refused.Count);
        Assert.All(refused, r =>
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.Status);
            Assert.Equal("node_busy", r.Error);
            Assert.InRange(double.Parse(r.RetryAfter!, System.Globalization.CultureInfo.InvariantCulture), 5, 10);
            // Admission:CloseRefusedConnections (default): the device comes back on a new connection.
            Assert.True(r.Close, "a refusal's answer says Connection: close");
        });
        // The two admitted ones reach the device gateway (refusals may come back before they get there) and no more do.
        while (node.Devices.Calls.Count < 2 && DateTime.UtcNow < deadline) await Task.Delay(50);
        await Task.Delay(500);
        Assert.Equal(2, node.Devices.Calls.Count);

        hold.SetResult();
        var admitted = (await Task.WhenAll(storm)).Where(r => r.Status != HttpStatusCode.ServiceUnavailable).ToList();
        Assert.Equal(5, admitted.Count);
        Assert.All(admitted, r => Assert.Equal((HttpStatusCode.OK, false), (r.Status, r.Close)));
        Assert.Equal(5, node.Devices.Calls.Count);

        node.Devices.Hold = null;
        Assert.Equal(HttpStatusCode.OK, (await CheckInAsync("storm-0")).Status);
    }

    [Fact]
    public async Task While_the_gateway_is_full_a_device_answered_moments_ago_is_refused_at_once_and_devices_on_their_cadence_queue()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "1",
            ["Admission:MaxQueuedCheckIns"] = "3",
            ["Admission:RetryAfterSeconds"] = "5",
            ["Admission:EarlyWithinSeconds"] = "60",
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
            ["Admission:CloseRefusedConnections"] = "false",
        });
        node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var secrets = new Dictionary<string, string>();
        foreach (var id in new[] { "early-a", "cadence-b", "cadence-c" }) secrets[id] = await node.ProvisionAsync(id);
        Task<HttpResponseMessage> Send(string device, string? secret = null) => SendCheckIn(node, device, secret ?? secrets[device]);

        // early-a is answered once; a request under cadence-c's id with another device's secret is refused and counts for nothing.
        Assert.Equal(HttpStatusCode.OK, (await Send("early-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Send("cadence-c", secrets["early-a"])).StatusCode);

        // cadence-b takes the only slot and is held in the device actor.
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Devices.Hold = hold.Task;
        var b = Send("cadence-b");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (node.Devices.Calls.Count < 2 && DateTime.UtcNow < deadline) await Task.Delay(50);

        // early-a again: refused at once without taking a queue place, naming why.
        using var early = await Send("early-a");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        var problem = await early.Content.ReadFromJsonAsync<ProblemResponse>();
        Assert.Equal("node_busy", problem!.Error);
        Assert.Contains("Device 'early-a' was answered", problem.Message);
        Assert.Contains("Admission:EarlyWithinSeconds", problem.Message);
        Assert.InRange(early.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 5, 10);
        Assert.NotEqual(true, early.Headers.ConnectionClose); // Admission:CloseRefusedConnections off: the connection stays for the retry

        // Someone without cadence-c's credential queues a request under its id; cadence-c's own check-in still queues
        // behind it (nothing unauthenticated may make a device's check-in refused), and a device on its cadence waits too.
        var forged = Send("cadence-c", secrets["early-a"]);
        await Task.Delay(300);
        var c = Send("cadence-c");
        await Task.Delay(500);
        Assert.False(forged.IsCompleted, "the forged request was answered while the only slot was held");
        Assert.False(c.IsCompleted, "a device on its cadence was refused or answered while the only slot was held");

        hold.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await b).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await forged).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await c).StatusCode);
        node.Devices.Hold = null;
        // With a free slot an early device is answered as before.
        Assert.Equal(HttpStatusCode.OK, (await Send("early-a")).StatusCode);
    }

    [Fact]
    public async Task An_early_device_is_refused_while_early_max_in_flight_check_ins_are_here_even_with_free_slots_and_a_cadence_device_takes_one()
    {
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "8",
            ["Admission:MaxQueuedCheckIns"] = "8",
            ["Admission:RetryAfterSeconds"] = "5",
            ["Admission:EarlyWithinSeconds"] = "60",
            ["Admission:EarlyMaxInFlight"] = "2",
            ["Admission:BusyQueueWaitMilliseconds"] = "0",
        });
        node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var secrets = new Dictionary<string, string>();
        foreach (var id in new[] { "early-a", "held-1", "held-2", "cadence-d" }) secrets[id] = await node.ProvisionAsync(id);
        Task<HttpResponseMessage> Send(string device) => SendCheckIn(node, device, secrets[device]);
        var admission = node.Services.GetRequiredService<CheckInAdmission>();

        Assert.Equal(HttpStatusCode.OK, (await Send("early-a")).StatusCode);
        // One check-in here: fewer than EarlyMaxInFlight (2), so the early device still gets a free slot.
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Devices.Hold = hold.Task;
        var held1 = Send("held-1");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (admission.InFlight < 1 && DateTime.UtcNow < deadline) await Task.Delay(20);
        var earlyWhileQuiet = Send("early-a");
        while (admission.InFlight < 2 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.False(earlyWhileQuiet.IsCompleted, "the early device was refused although fewer than EarlyMaxInFlight check-ins were here");

        // Two here now (6 slots free): early-a is refused at once, naming the setting; cadence-d takes a free slot.
        var held2 = Send("held-2");
        while (admission.InFlight < 3 && DateTime.UtcNow < deadline) await Task.Delay(20);
        using var early = await Send("early-a");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        var problem = await early.Content.ReadFromJsonAsync<ProblemResponse>();
        Assert.Equal("node_busy", problem!.Error);
        Assert.Contains("Admission:EarlyMaxInFlight, 2", problem.Message);
        Assert.NotNull(early.Headers.RetryAfter?.Delta);
        var cadence = Send("cadence-d");
        while (admission.InFlight < 4 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(4, admission.InFlight);
        Assert.False(cadence.IsCompleted, "the cadence device was refused while slots were free");

        hold.SetResult();
        foreach (var t in new[] { held1, earlyWhileQuiet, held2, cadence }) Assert.Equal(HttpStatusCode.OK, (await t).StatusCode);
        Assert.Equal(0, admission.InFlight);
    }

    [Fact]
    public async Task On_a_short_cadence_a_device_is_early_only_within_half_of_it()
    {
        // Gateway:NextCheckInSeconds 20: a device on that cadence must never be early, so the window is 10 s, not 60.
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?>
        {
            ["Admission:MaxConcurrentCheckIns"] = "1",
            ["Admission:MaxQueuedCheckIns"] = "3",
            ["Admission:EarlyWithinSeconds"] = "60",
            ["Gateway:NextCheckInSeconds"] = "20",
        });
        node.Devices.Assigned["acme"] = ("1.0.0", 1, "digest-1");
        var secrets = new Dictionary<string, string>();
        foreach (var id in new[] { "short-a", "cadence-b" }) secrets[id] = await node.ProvisionAsync(id);
        Task<HttpResponseMessage> Send(string device) => SendCheckIn(node, device, secrets[device]);

        Assert.Equal(HttpStatusCode.OK, (await Send("short-a")).StatusCode);
        var answered = DateTime.UtcNow;
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Devices.Hold = hold.Task;
        var b = Send("cadence-b");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (node.Devices.Calls.Count < 2 && DateTime.UtcNow < deadline) await Task.Delay(20);

        // Within 10 s: early, and refused at once while the only slot is held, naming the window.
        using (var early = await Send("short-a"))
        {
            Assert.True(DateTime.UtcNow - answered < TimeSpan.FromSeconds(10), "the machine took 10 s to get here; the refusal below would not be the rule's");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
            Assert.Contains("within 10 s (Admission:EarlyWithinSeconds, at most half of Gateway:NextCheckInSeconds)",
                (await early.Content.ReadFromJsonAsync<ProblemResponse>())!.Message);
        }

        // After 10 s the same device is on its cadence: it queues for the slot like any other and is answered.
        var wait = answered.AddSeconds(10.5) - DateTime.UtcNow;
        if (wait > TimeSpan.Zero) await Task.Delay(wait);
        var onCadence = Send("short-a");
        await Task.Delay(500);
        Assert.False(onCadence.IsCompleted, "a device answered more than half its cadence ago was refused as early");
        hold.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await b).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await onCadence).StatusCode);
    }

    [Fact]
    public async Task The_busy_rule_is_on_by_default_and_probes_the_node_itself()
    {
        Assert.Equal(5, new AdmissionOptions().BusyQueueWaitMilliseconds);
        // The test nodes turn it off (RunningNode.BusyRuleOff); unset here, the node runs with the shipped default.
        await using var node = await TestNode.StartAsync(new Dictionary<string, string?> { [RunningNode.BusyRuleOff.Key] = null });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        double probes = 0;
        while (probes == 0 && DateTime.UtcNow < deadline)
        {
            probes = PrometheusText.Sum(await node.Http.GetStringAsync("/metrics"), "orch_gateway_loopback_request_wait_milliseconds_count");
            if (probes == 0) await Task.Delay(200);
        }
        Assert.True(probes > 0, "no loopback probe reading on /metrics: the busy rule is not running by default");
    }

    // A signed check-in of a device on release 1.0.0 of acme.
    private static Task<HttpResponseMessage> SendCheckIn(TestNode node, string device, string secret)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/devices/{device}/check-in")
        {
            Content = JsonContent.Create(new CheckInRequest("acme", 1, "digest-1", null, "1.0.0")),
        };
        DeviceSigning.SignAs(req, device, secret);
        return node.Http.SendAsync(req);
    }

    [Fact]
    public void The_queue_probe_sees_work_stuck_in_the_thread_pools_global_queue_and_sees_it_drain()
    {
        using var probe = new ThreadPoolQueueProbe(1);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        // Every worker blocked, and more blockers queued than the pool can add threads for meanwhile: whatever the probe
        // queues next waits behind them until they are released, however fast or loaded the machine is.
        using var gate = new ManualResetEventSlim(false);
        var blockers = ThreadPool.ThreadCount + 64;
        var running = 0;
        for (var i = 0; i < blockers; i++)
            ThreadPool.UnsafeQueueUserWorkItem<object?>(_ => { Interlocked.Increment(ref running); gate.Wait(); }, null, preferLocal: false);
        try
        {
            // Polled without awaiting: a continuation of this test would wait in the blocked queue too.
            while (probe.CurrentWaitMilliseconds < 200 && DateTime.UtcNow < deadline) Thread.Sleep(10);
            var seen = probe.CurrentWaitMilliseconds;
            Assert.True(seen >= 200, $"the probe read {seen:F1} ms with every worker blocked");
        }
        finally
        {
            gate.Set();
        }
        while (probe.CurrentWaitMilliseconds >= 50 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.True(probe.CurrentWaitMilliseconds < 50, $"the probe still reads {probe.CurrentWaitMilliseconds:F1} ms after the blockers ran");
        Assert.True(Volatile.Read(ref running) > 0);
    }

    [Fact]
    public void The_sustained_reading_ignores_one_stalled_probe_and_rises_while_every_probe_waits()
    {
        using var probe = new ThreadPoolQueueProbe(1, sustainedProbes: 4);
        var deadline = DateTime.UtcNow.AddSeconds(60);

        // One stall: every worker blocked (as above) holds up the one probe in the queue. The current reading sees it;
        // the sustained one does not, since the probes before it ran (an idle pool's waits are far under 50 ms).
        Thread.Sleep(100);
        // The premise: the probes before the stall ran promptly (on a machine whose cores other work saturates, every probe
        // waits, and that is sustained).
        while (probe.SustainedWaitMilliseconds >= 50 && DateTime.UtcNow < deadline) Thread.Sleep(10);
        // Not disposed: blockers the pool starts after the release still wait on it (and return at once).
        var gate = new ManualResetEventSlim(false);
        {
            for (var i = 0; i < ThreadPool.ThreadCount + 64; i++)
                ThreadPool.UnsafeQueueUserWorkItem<object?>(_ => gate.Wait(), null, preferLocal: false);
            try
            {
                while (probe.CurrentWaitMilliseconds < 200 && DateTime.UtcNow < deadline) Thread.Sleep(10);
                Assert.True(probe.CurrentWaitMilliseconds >= 200, $"the probe read {probe.CurrentWaitMilliseconds:F1} ms with every worker blocked");
                Assert.True(probe.SustainedWaitMilliseconds < 50, $"one stalled probe read as sustained: {probe.SustainedWaitMilliseconds:F1} ms");
            }
            finally
            {
                gate.Set();
            }
        }

        // Sustained: stall after stall. Each cycle blocks every worker on a gate (and queues more blockers than the pool
        // can add threads meanwhile) for 40 ms, so the probe queued behind them waits about that long, then releases them.
        // A probe that slipped in before a cycle's blockers (the test thread descheduled) reads low, so the cycles go on
        // until the last four probes all waited, or the deadline: what is asserted is that the reading rises when every
        // probe waits, decided by the gates, not by how fast this machine's cores are.
        while (probe.SustainedWaitMilliseconds < 20 && DateTime.UtcNow < deadline)
        {
            var stall = new ManualResetEventSlim(false);
            for (var i = 0; i < ThreadPool.ThreadCount + 64; i++)
                ThreadPool.UnsafeQueueUserWorkItem<object?>(_ => stall.Wait(), null, preferLocal: false);
            Thread.Sleep(40);
            stall.Set();
        }
        Assert.True(probe.SustainedWaitMilliseconds >= 20, $"the sustained reading is {probe.SustainedWaitMilliseconds:F1} ms while every probe waited");
        while (probe.SustainedWaitMilliseconds >= 20 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.True(probe.SustainedWaitMilliseconds < 20, $"the sustained reading stays at {probe.SustainedWaitMilliseconds:F1} ms after the queue drained");
    }

    [Fact]
    public void Recent_check_ins_are_remembered_per_device_in_a_fixed_table()
    {
        var recent = new RecentCheckIns(1024);
        Assert.Null(recent.SinceLastAnswer("dev-1"));
        recent.Answered("dev-1");
        Assert.InRange(recent.SinceLastAnswer("dev-1")!.Value, TimeSpan.Zero, TimeSpan.FromSeconds(5));
        Assert.Null(recent.SinceLastAnswer("dev-2"));
        // More devices than slots: each lookup either knows its own device or nothing, never another device's time.
        for (var i = 0; i < 5000; i++) recent.Answered($"fleet-{i}");
        var known = Enumerable.Range(0, 5000).Count(i => recent.SinceLastAnswer($"fleet-{i}") is not null);
        Assert.InRange(known, 500, 1024);
        Assert.InRange(Enumerable.Range(0, 5000).Count(i => recent.SinceLastAnswer($"other-{i}") is not null), 0, 10);
    }

    [Fact]
    public void Admission_settings_out_of_range_are_refused_with_the_setting_named()
    {
        Assert.Empty(new AdmissionOptions().Validate());
        var problems = new AdmissionOptions
            {
                MaxConcurrentCheckIns = 0, MaxQueuedCheckIns = -1, RetryAfterSeconds = 0, EarlyWithinSeconds = -1, RecentSlots = 10, EarlyMaxInFlight = 0,
                MaxConnections = 8, BusyQueueWaitMilliseconds = -1, BusyProbeMilliseconds = 0, BusyProbeCalmMilliseconds = -1, BusySustainedProbes = 0, BusyProbe = "kernel",
                AcceptBacklog = 0, MaxUnreadConnections = -1, UnreadConnectionMilliseconds = 0, BusyListenQueue = -1,
            }
            .Validate().ToList();
        Assert.Equal(16, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxUnreadConnections -1 is out of range; use 0 (no bound)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:UnreadConnectionMilliseconds 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusyListenQueue -1 is out of range; use 0 (off)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:AcceptBacklog 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusySustainedProbes 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusyProbe 'kernel' is not a probe; use loopback", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusyQueueWaitMilliseconds -1 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusyProbeMilliseconds 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:BusyProbeCalmMilliseconds -1 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:EarlyMaxInFlight 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxConnections 8 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:EarlyWithinSeconds -1 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:RecentSlots 10 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxConcurrentCheckIns 0 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:MaxQueuedCheckIns -1 is out of range", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Admission:RetryAfterSeconds 0 is out of range", StringComparison.Ordinal));
    }
}
