using Akka.Actor;
using Akka.Event;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// The device I/O of one rollout, a child of its <see cref="RolloutActor"/>: given a <see cref="PassInput"/> captured
/// from the rollout's state, it asks device actors (state, assignment, cancel), the registry (late joiners) and the
/// coordinator (claims), and answers <see cref="PassCompleted"/> with the facts it established. It holds no state of
/// the rollout and persists nothing: the rollout actor decides and persists, and keeps answering views and operator
/// commands while a pass, which may talk to thousands of devices, is under way. One pass at a time (the mailbox waits
/// for each); every pass is answered, with whatever facts its stages established before one failed.
/// </summary>
internal sealed class RolloutPassWorker : ReceiveActor
{
    private readonly string _rolloutId;
    private readonly IActorRef _devices;
    private readonly IActorRef _registry;
    private readonly RolloutSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public static Props Props(string rolloutId, IActorRef devices, IActorRef registry, RolloutSettings settings) =>
        Akka.Actor.Props.Create(() => new RolloutPassWorker(rolloutId, devices, registry, settings));

    public RolloutPassWorker(string rolloutId, IActorRef devices, IActorRef registry, RolloutSettings settings)
    {
        _rolloutId = rolloutId;
        _devices = devices;
        _registry = registry;
        _settings = settings;
        ReceiveAsync<PassInput>(async input =>
        {
            var replyTo = Sender;
            PassCompleted done;
            try
            {
                done = await RunPass(input);
            }
            catch (Exception ex)
            {
                _log.Warning(ex, "Rollout {0}: pass failed; retrying at the next poll", _rolloutId);
                done = new PassCompleted([], input.JoinDue);
            }
            replyTo.Tell(done);
        });
    }

    private DateTimeOffset Now => _settings.Clock.GetUtcNow();

    private async Task<PassCompleted> RunPass(PassInput input)
    {
        var facts = new List<IRolloutEvent>();
        if (input.CommandTargets.Count > 0 || input.Rollback)
        {
            await DeliverCommands(input, facts);
            return new PassCompleted(facts, false);
        }
        if (input.Restoring is { Count: > 0 })
        {
            await Stage("observing rolled-back devices", () => ObserveRollback(input, facts));
            return new PassCompleted(facts, false);
        }
        // Stages fail independently, so what one established (an accepted assignment) is not lost to another's timeout.
        await Stage("observing devices", () => Observe(input, facts));
        await Stage("assigning devices", () => Assign(input, facts));
        if (input.JoinDue) await Stage("looking for late joiners", () => Join(input, facts));
        return new PassCompleted(facts, input.JoinDue);
    }

    private async Task Stage(string what, Func<Task> run)
    {
        try
        {
            await run();
        }
        catch (Exception ex)
        {
            _log.Warning(ex, "Rollout {0}: {1} failed; retrying at the next poll", _rolloutId, what);
        }
    }

    private async Task<T?> AskDevice<T>(IDeviceCommand command) where T : class
    {
        try
        {
            var answer = await _devices.Ask<object>(command, _settings.AskTimeout);
            if (answer is DeviceCommandRejected r && typeof(T) != typeof(DeviceCommandRejected))
                throw new DeviceRejection(r);
            return answer as T;
        }
        catch (AskTimeoutException)
        {
            return null;
        }
    }

    private async Task Observe(PassInput input, List<IRolloutEvent> facts)
    {
        var target = input.Spec.Target;
        var ids = input.InProgress;
        var states = await Task.WhenAll(ids.Select(id => AskDevice<DeviceState>(new GetDeviceState(id))));
        for (var i = 0; i < ids.Count; i++)
        {
            if (states[i] is not { } s) continue; // unreachable now; read again next poll
            if (s.InstalledVersionId == target.VersionId && s.Work is null)
                facts.Add(new RolloutDeviceSucceeded(s.DeviceId, Now));
            else if (input.TimedOut.Contains(s.DeviceId))
            {
                var seen = s.LastSeen is { } at ? $"last seen {at:u}" : "never checked in";
                var reason = $"did not install {target.Version} within {TimeSpan.FromSeconds(input.Spec.DeviceTimeoutSeconds)} of its assignment ({seen})";
                if (await Cancel(s.DeviceId, reason, giveUp: true)) facts.Add(new RolloutDeviceFailed(s.DeviceId, reason, Now));
            }
            else if (s.Target is null || s.Target.RolloutId != _rolloutId || s.Target.VersionId != target.VersionId)
                facts.Add(new RolloutDeviceFailed(s.DeviceId,
                    $"assignment removed outside this rollout (device now targets {(s.Target is null ? "nothing" : $"{s.Target.Version} of {s.Target.RolloutId}")})", Now));
            else if (input.Spec.MaxAttemptsPerDevice > 0 && s.FailedAttempts >= input.Spec.MaxAttemptsPerDevice)
            {
                // Stop the device retrying before counting it failed; if the cancel does not get through, try again next poll.
                var reason = $"gave up after {s.FailedAttempts} failed attempts (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})";
                if (await Cancel(s.DeviceId, reason, giveUp: true)) facts.Add(new RolloutDeviceFailed(s.DeviceId, reason, Now));
            }
            else if (s.FailedAttempts >= input.Spec.FailingAfterAttempts && !input.Failing.Contains(s.DeviceId))
            {
                // Counted once when it crosses the threshold; it keeps its assignment and retries until it succeeds.
                facts.Add(new RolloutDeviceFailing(s.DeviceId, s.FailedAttempts,
                    $"failing: {s.FailedAttempts} failed attempts, still retrying (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})", Now));
            }
        }
    }

    private async Task<bool> Cancel(string deviceId, string reason, bool giveUp = false)
    {
        try { return await AskDevice<DeviceCommandAccepted>(new CancelAssignment(deviceId, "rollout:" + _rolloutId, reason, giveUp)) is not null; }
        catch (DeviceRejection) { return true; } // nothing to cancel there
    }

    private async Task Assign(PassInput input, List<IRolloutEvent> facts)
    {
        if (input.ToAssign.Count == 0) return;
        var results = await Task.WhenAll(input.ToAssign.Select(id => AssignOne(input.Spec, id)));
        foreach (var e in results)
            if (e is not null) facts.Add(e);
    }

    private async Task<IRolloutEvent?> AssignOne(RolloutSpec spec, string deviceId)
    {
        var t = spec.Target;
        try
        {
            var s = await AskDevice<DeviceState>(new GetDeviceState(deviceId));
            if (s is null) return null;
            if (s.Product is not null && s.Product != t.Product)
                return new RolloutDeviceFailed(deviceId, $"device runs product '{s.Product}', not '{t.Product}'", Now);
            // Already ours (a crash after the device accepted): the installed version is the previous one unless it already finished.
            var previous = s.Target?.RolloutId == _rolloutId && s.InstalledVersionId == t.VersionId ? 0 : s.InstalledVersionId;
            var ok = await AskDevice<DeviceCommandAccepted>(new AssignTarget(deviceId, t.Product, t.Version, t.VersionId, t.ManifestPath, _rolloutId,
                spec.BandwidthBytesPerSecond));
            return ok is null ? null : new RolloutDeviceAssigned(deviceId, previous, Now);
        }
        catch (DeviceRejection r)
        {
            return new RolloutDeviceFailed(deviceId, $"device refused the assignment: {r.Rejected.Message}", Now);
        }
    }

    private async Task Join(PassInput input, List<IRolloutEvent> facts)
    {
        DeviceList list;
        try { list = await RegistrySelection.AllAsync(_registry, new QueryDevices(null, null, null, null, _settings.RegistryQueryLimit), _settings.AskTimeout); }
        catch (RegistryLimitExceededException ex)
        {
            // Joining from a truncated list would silently leave devices out; join nobody and say why (every join check).
            _log.Error("Rollout {0}: late joiners not checked: {1}", _rolloutId, ex.Message);
            return;
        }
        var spec = input.Spec;
        var fresh = list.Devices
            .Where(d => d.Product == spec.Target.Product && spec.Selector.Matches(d) && !input.Known.Contains(d.DeviceId)
                        && Messages.Channels.ChannelRules.ChannelOf(d.Tags) == spec.Channel)
            .Select(d => d.DeviceId).ToList();
        if (fresh.Count == 0) return;
        var granted = await input.Coordinator.Ask<DevicesClaimed>(new ClaimDevices(_rolloutId, fresh), _settings.AskTimeout);
        if (granted.DeviceIds.Count > 0) facts.Add(new RolloutDevicesJoined(granted.DeviceIds, Now));
    }

    private async Task DeliverCommands(PassInput input, List<IRolloutEvent> facts)
    {
        var rollback = input.Rollback;
        var t = input.Spec.Target;
        var targets = input.CommandTargets;
        var versions = input.RollbackVersions.ToDictionary(v => v.VersionId);
        var done = await Task.WhenAll(targets.Select(async d =>
        {
            try
            {
                // The operator's rollback is the downgrade authorization: the device's directive carries it, so its agent
                // installs the previous version below its floor (and only that version, only from this rollout).
                if (rollback && versions.TryGetValue(d.PreviousVersionId, out var v))
                    return await AskDevice<DeviceCommandAccepted>(new AssignTarget(d.DeviceId, t.Product, v.Version, v.VersionId, v.ManifestPath, _rolloutId,
                        input.Spec.BandwidthBytesPerSecond, AuthorizeDowngrade: true)) is not null;
                // Abort, or rollback of a device that had nothing (known) installed: cancel, but only our own assignment.
                var s = await AskDevice<DeviceState>(new GetDeviceState(d.DeviceId));
                if (s is null) return false;
                if (s.Target?.RolloutId != _rolloutId) return true;
                return await Cancel(d.DeviceId, rollback ? "rollout rolled back" : "rollout aborted");
            }
            catch (DeviceRejection)
            {
                return true; // the device refuses (e.g. other product): nothing to undo there
            }
        }));
        // Abort is incremental (a cancelled device leaves InProgress); rollback re-sends to all until every device acknowledged.
        if (!rollback)
            for (var i = 0; i < targets.Count; i++)
                if (done[i]) facts.Add(new RolloutDeviceFailed(targets[i].DeviceId, "assignment cancelled by abort", Now));
        if (done.All(x => x)) facts.Add(new RolloutCommandsDelivered(targets.Count, Now));
    }

    /// <summary>
    /// Reads each rolled-back device's own state and records, once, that it is back on its previous version, or that it
    /// will not get there (retry policy exhausted: its assignment is cancelled; or the assignment was replaced).
    /// </summary>
    private async Task ObserveRollback(PassInput input, List<IRolloutEvent> facts)
    {
        var devices = input.Restoring!;
        var states = await Task.WhenAll(devices.Select(d => AskDevice<DeviceState>(new GetDeviceState(d.DeviceId))));
        for (var i = 0; i < devices.Count; i++)
        {
            if (states[i] is not { } s) continue;
            var previous = devices[i].PreviousVersionId;
            if (s.InstalledVersionId == previous && s.Work is null)
                facts.Add(new RolloutDeviceRestored(s.DeviceId, Now));
            else if (s.Target is null || s.Target.RolloutId != _rolloutId || s.Target.VersionId != previous)
                facts.Add(new RolloutDeviceRestoreFailed(s.DeviceId,
                    $"rollback assignment removed outside this rollout (device now targets {(s.Target is null ? "nothing" : $"{s.Target.Version} of {s.Target.RolloutId}")})", Now));
            // Without a cap (MaxAttemptsPerDevice 0, the default) a device retries its restore until it succeeds.
            else if (input.Spec.MaxAttemptsPerDevice > 0 && s.FailedAttempts >= input.Spec.MaxAttemptsPerDevice)
            {
                var reason = $"gave up restoring version ID {previous} after {s.FailedAttempts} failed attempts (last: {s.LastFailure?.Stage} {s.LastFailure?.Reason})";
                if (await Cancel(s.DeviceId, reason)) facts.Add(new RolloutDeviceRestoreFailed(s.DeviceId, reason, Now));
            }
        }
    }

    private sealed class DeviceRejection(DeviceCommandRejected rejected) : Exception(rejected.Message)
    {
        public DeviceCommandRejected Rejected { get; } = rejected;
    }
}

/// <summary>What one pass works on, captured on the rollout actor's thread; local only.</summary>
internal sealed record PassInput(
    RolloutSpec Spec,
    IReadOnlyList<RolloutDeviceRecord> CommandTargets,
    bool Rollback,
    IReadOnlyList<RollbackVersion> RollbackVersions,
    IReadOnlyList<string> InProgress,
    IReadOnlySet<string> TimedOut,
    IReadOnlyList<string> ToAssign,
    bool JoinDue,
    IActorRef Coordinator,
    IReadOnlySet<string> Known,
    IReadOnlySet<string> Failing,
    IReadOnlyList<RolloutDeviceRecord>? Restoring = null) : INoSerializationVerificationNeeded;

/// <summary>Facts a pass established, applied and persisted by the rollout actor; local only.</summary>
internal sealed record PassCompleted(IReadOnlyList<IRolloutEvent> Facts, bool JoinChecked) : INoSerializationVerificationNeeded;
