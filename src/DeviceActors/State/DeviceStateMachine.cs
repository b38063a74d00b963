using Orchestrator.Messages;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.State;

/// <summary>What a command leads to: events to persist (possibly none) and the reply built from the resulting state.</summary>
/// <param name="Events">Events to persist, in order.</param>
/// <param name="Reply">Builds the reply from the state after all events are applied.</param>
public sealed record CommandOutcome(IReadOnlyList<IDeviceEvent> Events, Func<DeviceState, IOrchestratorMessage> Reply)
{
    /// <summary>A refusal: nothing persisted.</summary>
    public static CommandOutcome Reject(string deviceId, string code, string message) =>
        new([], _ => new DeviceCommandRejected(deviceId, code, message));
}

/// <summary>
/// The device repair/upgrade state machine as pure functions: <see cref="Decide"/> turns a command into events,
/// <see cref="Apply"/> folds an event into the state. The actor persists what Decide returns; recovery and the
/// registry read model replay the same Apply, so the three can never disagree.
/// </summary>
public static class DeviceStateMachine
{
    /// <summary>Statuses in which the device has work it reports on.</summary>
    public static bool IsWorking(DeviceStatus s) => s is DeviceStatus.UpgradeAssigned or DeviceStatus.Downloading or DeviceStatus.Verifying
        or DeviceStatus.Installing or DeviceStatus.RepairNeeded or DeviceStatus.Repairing or DeviceStatus.Failed;

    /// <summary>True for messages that prove the device itself is alive (as opposed to operator or rollout commands).</summary>
    public static bool IsDeviceTraffic(IDeviceCommand c) => c is CheckIn or ReportProgress or ReportFailure or ReportCompletion or ReportUpdaterLost;

    /// <summary>Decides what <paramref name="command"/> does to <paramref name="state"/>.</summary>
    /// <param name="state">Current state.</param>
    /// <param name="command">The command (already validated by its constructor).</param>
    /// <param name="settings">Retry backoff settings.</param>
    /// <param name="random">Jitter source.</param>
    /// <param name="now">Clock, for events not stamped by the gateway.</param>
    public static CommandOutcome Decide(DeviceState state, IDeviceCommand command, DeviceActorSettings settings, Random random, DateTimeOffset now)
    {
        if (command.DeviceId != state.DeviceId)
            return CommandOutcome.Reject(command.DeviceId, "wrong_device",
                $"Command for device '{command.DeviceId}' reached the actor of '{state.DeviceId}'; this is a routing bug.");

        // A device request is accepted at most once: a replayed (or reordered) one is refused before anything else.
        if (DeviceRequestSequence.RefuseReplay(command, state.LastRequestSequence) is { } replayed)
            return new CommandOutcome([], _ => replayed);

        if (state.Status == DeviceStatus.Offline && IsDeviceTraffic(command))
        {
            // The device is back: resume where it was, then handle the message as if it had never left. If the message
            // itself is refused, the device stays Offline: a refused input changes no state.
            var back = new DeviceCameBack(Timestamp(command) ?? now);
            var resumed = Apply(state, back, state.EventCount + 1);
            var inner = Decide(resumed, command, settings, random, now);
            return inner.Events.Count == 0 && inner.Reply(resumed) is DeviceCommandRejected
                ? inner
                : inner with { Events = [back, .. inner.Events] };
        }

        // A retired device takes nothing any more; reading its state and retiring it again stay possible.
        if (state.Decommissioned is { } retired && command is not (GetDeviceState or DecommissionDevice))
            return CommandOutcome.Reject(state.DeviceId, "device_decommissioned",
                $"Device '{state.DeviceId}' was decommissioned on {retired:u}; its history is kept, but nothing it sends is taken. Give a replacement device a new id.");

        return command switch
        {
            RegisterDevice r => Register(state, r),
            DecommissionDevice d => state.Decommissioned is not null ? Accepted() : Accepted(new DeviceDecommissioned(d.Operator, d.Reason, d.Timestamp)),
            CheckIn c => DecideCheckIn(state, c, settings.LastSeenPersistInterval),
            AssignTarget a => Assign(state, a, now),
            CancelAssignment c => Cancel(state, c, now),
            ReportProgress p => Progress(state, p),
            ReportFailure f => Failure(state, f, settings, random),
            ReportCompletion c => Completion(state, c),
            GetDeviceState => new CommandOutcome([], s => s),
            ResetRequestSequence r => state.LastRequestSequence == 0 ? Accepted() : Accepted(new RequestSequenceReset(r.Reason, r.Timestamp)),
            SetDeviceProduct p => DeviceTrustRules.SetProduct(state, p),
            ReportUpdaterLost u => state.UpdaterLost?.Reason == u.Reason ? Accepted() : Accepted(new DeviceUpdaterLost(u.Reason, u.Timestamp, u.RequestSequence)),
            SetDeviceAttributes a => SetAttributes(state, a),
            _ => CommandOutcome.Reject(command.DeviceId, "unknown_command", $"Device actor does not handle {command.GetType().Name}."),
        };
    }

    private static DateTimeOffset? Timestamp(IDeviceCommand c) => c switch
    {
        CheckIn x => x.Timestamp,
        ReportProgress x => x.Timestamp,
        ReportFailure x => x.Timestamp,
        ReportCompletion x => x.Timestamp,
        ReportUpdaterLost x => x.Timestamp,
        _ => null,
    };

    private static CommandOutcome Accepted(params IDeviceEvent[] events) =>
        new(events, s => new DeviceCommandAccepted(s.DeviceId, s.Status));

    private static CommandOutcome Register(DeviceState s, RegisterDevice r)
    {
        if (s.Product is not null && s.Product != r.Product)
            return CommandOutcome.Reject(s.DeviceId, "product_mismatch",
                $"Device '{s.DeviceId}' runs product '{s.Product}', not '{r.Product}'. Register it under its own product.");
        if (s.Product == r.Product && s.Tags.SequenceEqual(r.Tags)) return Accepted();
        return Accepted(new DeviceRegistered(r.Product, r.Tags, r.Timestamp));
    }

    private static CommandOutcome DecideCheckIn(DeviceState s, CheckIn c, TimeSpan lastSeenPersistInterval)
    {
        if (DeviceTrustRules.ProductMismatch(s, c) is { } mismatch) return mismatch;
        if (s.Target is not null && s.Target.Product != c.Product)
            return CommandOutcome.Reject(s.DeviceId, "product_mismatch",
                $"Device '{s.DeviceId}' reports product '{c.Product}' but its assigned target is for '{s.Target.Product}'. " +
                "Cancel the assignment or fix the device's product.");

        UpdateAction action;
        WorkItem? work;
        // The rollout's target or the channel's current release (ReleaseSelection); differ -> upgrade, equal -> repair or nothing.
        // Below the device's floor only an operator's authorized downgrade is handed out.
        var desired = ReleaseSelection.Desired(s, c);
        if (desired is { } d && d.VersionId != c.InstalledVersionId && DeviceTrustRules.MayInstall(s, d.VersionId, d.Rollout))
        {
            action = UpdateAction.Upgrade;
            work = new WorkItem(WorkKind.Upgrade, d.Version, d.VersionId, d.ManifestPath, []);
        }
        else if (c.NeedsRepair)
        {
            action = UpdateAction.Repair;
            work = new WorkItem(WorkKind.Repair, c.InstalledVersion!, c.InstalledVersionId, c.InstalledManifestPath!, c.DifferingFiles);
        }
        else
        {
            action = UpdateAction.None;
            work = null;
        }
        if (AnnouncedWait(s, work, c.Timestamp) is { } wait)
            return new CommandOutcome([], st => new CheckInDeferred(st.DeviceId, st.FailedAttempts, (long)Math.Ceiling(wait.TotalMilliseconds)));
        var e = new DeviceCheckedIn(c.Product, c.InstalledVersionId, c.InventoryDigest, c.AgentVersion, action, work, c.Timestamp, c.RequestSequence);
        // Only upgrade work is rollout work; a repair restores what is installed and is not metered by a rollout.
        var rollout = action == UpdateAction.Upgrade ? desired!.Rollout : null;
        var downgrade = action == UpdateAction.Upgrade && ReleaseSelection.IsDowngrade(c.InstalledVersionId, desired!);
        var source = action == UpdateAction.Upgrade ? (desired!.Source == ReleaseSource.Channel ? "channel" : "rollout") : null;
        // A heartbeat (nothing but LastSeen would change) is not journaled while the persisted LastSeen is recent: an idle
        // fleet would otherwise cost one write per check-in. The reply is the same either way (built from an equal state).
        IDeviceEvent[] events = IsHeartbeat(s, e, lastSeenPersistInterval) ? [] : [e];
        // A completion report lost on its way (the node down, the connection cut) is superseded by the next check-in: a
        // device that runs its work's version with nothing differing finished that work, and the journal records the
        // completion before the check-in, as if the report had arrived.
        if (s.Work is { } finished && finished.VersionId == c.InstalledVersionId && !c.NeedsRepair)
            events = [new WorkCompleted(c.InstalledVersionId, c.InventoryDigest, finished.Kind, c.Timestamp, c.RequestSequence), .. events];
        if (c.Stale != s.Stale) events = [.. events, new DeviceStaleChanged(c.Stale, c.Timestamp)];
        // Reported attributes are journaled when they change, never on every check-in (an idle fleet writes nothing).
        if (c.Attributes is not null && !DeviceAttributeRules.SameAs(c.Attributes, s.ReportedAttributes))
            events = [.. events, new DeviceAttributesReported(c.Attributes, c.Timestamp)];
        // Only a verified updater checks in (the launcher skips the session without one), so a check-in clears the loss.
        if (s.UpdaterLost is not null) events = [.. events, new DeviceUpdaterRestored(c.Timestamp)];
        return new CommandOutcome(events, st => new CheckInDecision(st.DeviceId, action, work?.Version, work?.VersionId, work?.ManifestPath,
            work?.RepairFiles ?? [], st.Status, rollout?.RolloutId, rollout?.BandwidthBytesPerSecond ?? 0, downgrade, source,
            FloorVersionId: st.FloorVersionId, Product: st.Product,
            AuthorizedDowngrade: rollout is { Downgrade: true } && rollout.VersionId < st.FloorVersionId));
    }

    /// <summary>
    /// True when <paramref name="e"/> would change nothing but LastSeen and the persisted LastSeen is younger than
    /// <paramref name="interval"/>. Only action None qualifies: a check-in that hands out work is always journaled.
    /// </summary>
    private static bool IsHeartbeat(DeviceState s, DeviceCheckedIn e, TimeSpan interval)
    {
        if (interval <= TimeSpan.Zero || e.Decision != UpdateAction.None || s.LastSeen is not { } seen || e.At - seen >= interval) return false;
        var next = ApplyCheckIn(s, e, s.EventCount);
        // The sequence high-water mark is not a reason to journal: the actor keeps it in memory (see DeviceActor).
        return next with { LastSeen = s.LastSeen, LastRequestSequence = s.LastRequestSequence } == s;
    }

    private static CommandOutcome SetAttributes(DeviceState s, SetDeviceAttributes a)
    {
        var current = s.OperatorAttributes ?? DeviceAttributeRules.Empty;
        foreach (var key in a.Remove)
            if (!current.ContainsKey(key))
                return CommandOutcome.Reject(s.DeviceId, "attribute_not_set",
                    $"Device '{s.DeviceId}' has no operator attribute '{key}' to remove" +
                    (s.ReportedAttributes?.ContainsKey(key) == true ? " (the device reports it; set a value to override it)." : "; nothing changed."));
        var next = DeviceAttributeRules.Empty.AddRange(current).SetItems(a.Set).RemoveRange(a.Remove);
        if (next.Count > DeviceAttributeRules.MaxCount)
            return CommandOutcome.Reject(s.DeviceId, "too_many_attributes",
                $"Device '{s.DeviceId}' would have {next.Count} operator attributes; at most {DeviceAttributeRules.MaxCount} are kept. Remove some first.");
        return DeviceAttributeRules.SameAs(next, current) ? Accepted() : Accepted(new DeviceAttributesSet(next, a.Operator, a.Timestamp));
    }

    private static CommandOutcome Assign(DeviceState s, AssignTarget a, DateTimeOffset now)
    {
        if (s.Product is not null && s.Product != a.Product)
            return CommandOutcome.Reject(s.DeviceId, "product_mismatch",
                $"Cannot assign {a.Product} {a.Version} to device '{s.DeviceId}', which runs product '{s.Product}'.");
        if (DeviceTrustRules.BelowFloor(s, a) is { } belowFloor) return belowFloor;
        var target = new TargetAssignment(a.Product, a.Version, a.VersionId, a.ManifestPath, a.RolloutId, a.BandwidthBytesPerSecond,
            a.AuthorizeDowngrade && a.VersionId < s.FloorVersionId);
        if (s.Target == target) return Accepted();
        return Accepted(new TargetAssigned(target, now));
    }

    private static CommandOutcome Cancel(DeviceState s, CancelAssignment c, DateTimeOffset now) =>
        s.Target is null && s.Work is null
            ? Accepted()
            : Accepted(new AssignmentCancelled(c.Operator, c.Reason, s.Target?.RolloutId, now, c.GiveUp));

    private static CommandOutcome? RequireWork(DeviceState s, long versionId, string what)
    {
        if (s.Work is null)
            return CommandOutcome.Reject(s.DeviceId, "no_active_work",
                $"Device '{s.DeviceId}' reported {what} for version {versionId} but has no active work (status {s.Status}); check in first.");
        if (s.Work.VersionId != versionId)
            return CommandOutcome.Reject(s.DeviceId, "stale_target",
                $"Device '{s.DeviceId}' reported {what} for version {versionId}, but its current work is {s.Work.Kind} to version " +
                $"{s.Work.VersionId}; check in again to get the current decision.");
        return null;
    }

    private static CommandOutcome Progress(DeviceState s, ReportProgress p) =>
        RequireWork(s, p.TargetVersionId, "progress")
        ?? Accepted(new ProgressRecorded(new TransferProgress(p.Phase, p.BytesDone, p.BytesTotal, p.ChunksDone, p.ChunksTotal), p.Timestamp, p.RequestSequence));

    private static CommandOutcome Failure(DeviceState s, ReportFailure f, DeviceActorSettings settings, Random random)
    {
        if (RequireWork(s, f.TargetVersionId, "a failure") is { } rejected) return rejected;
        var attempt = s.FailedAttempts + 1;
        var delay = RetryBackoff.Delay(attempt, settings.RetryBase, settings.RetryCap, random);
        var e = new AttemptFailed(new FailureInfo(f.Stage, f.Reason, attempt, (long)delay.TotalMilliseconds, f.Timestamp), f.Timestamp, f.RequestSequence);
        return new CommandOutcome([e], st => new RetryAdvice(st.DeviceId, attempt, (long)delay.TotalMilliseconds));
    }

    private static CommandOutcome Completion(DeviceState s, ReportCompletion c) =>
        RequireWork(s, c.InstalledVersionId, "completion")
        ?? Accepted(new WorkCompleted(c.InstalledVersionId, c.InventoryDigest, s.Work!.Kind, c.Timestamp, c.RequestSequence));

    /// <summary>Folds one event into the state. Pure and total: recovery depends on it never throwing.</summary>
    /// <param name="s">State before.</param>
    /// <param name="e">The event.</param>
    /// <param name="sequenceNr">The event's sequence number (becomes <see cref="DeviceState.EventCount"/>).</param>
    public static DeviceState Apply(DeviceState s, IDeviceEvent e, long sequenceNr)
    {
        if (e is DeviceCheckedIn checkedIn) return ApplyCheckIn(s, checkedIn, sequenceNr); // one copy for the most frequent event
        var next = e switch
        {
            DeviceRegistered r => s with { Product = r.Product, Tags = r.Tags },
            TargetAssigned t => ApplyTarget(s, t),
            AssignmentCancelled { GaveUp: true } g => GaveUp(s, g),
            AssignmentCancelled => WithStatus(s with { Target = null, Work = null, Progress = null, FailedAttempts = 0, LastFailure = null },
                s.Status == DeviceStatus.Unknown ? DeviceStatus.Unknown : DeviceStatus.Idle),
            ProgressRecorded p => WithStatus(s with { Progress = p.Progress, LastSeen = p.At },
                s.Work?.Kind == WorkKind.Repair ? DeviceStatus.Repairing : p.Progress.Phase switch
                {
                    WorkPhase.Verify => DeviceStatus.Verifying,
                    WorkPhase.Install => DeviceStatus.Installing,
                    _ => DeviceStatus.Downloading,
                }),
            AttemptFailed f => s with { Status = DeviceStatus.Failed, FailedAttempts = f.Failure.Attempt, LastFailure = f.Failure, LastSeen = f.At },
            WorkCompleted w => s with
            {
                Status = DeviceStatus.Completed, InstalledVersionId = w.InstalledVersionId, InventoryDigest = w.InventoryDigest,
                Work = null, Progress = null, FailedAttempts = 0, LastFailure = null, LastSeen = w.At,
                FloorVersionId = DeviceTrustRules.FloorAfterCompletion(s, w),
            },
            DeviceProductChanged p => WithStatus(s with
            {
                Product = p.Product, Target = null, Work = null, Progress = null, FailedAttempts = 0, LastFailure = null, FloorVersionId = 0,
            }, s.Status == DeviceStatus.Unknown ? DeviceStatus.Unknown : DeviceStatus.Idle),
            DeviceStaleChanged st => s with { Stale = st.Stale },
            DeviceUpdaterLost u => s with { UpdaterLost = new UpdaterLoss(u.Reason, u.At), LastSeen = u.At },
            DeviceUpdaterRestored => s with { UpdaterLost = null },
            DeviceDecommissioned d => s with { Decommissioned = d.At, Target = null, Work = null, Progress = null },
            DeviceWentOffline => s.Status == DeviceStatus.Offline ? s : s with { StatusBeforeOffline = s.Status, Status = DeviceStatus.Offline },
            DeviceCameBack b => s with { Status = s.StatusBeforeOffline ?? s.Status, StatusBeforeOffline = null, LastSeen = b.At },
            RequestSequenceReset => s with { LastRequestSequence = 0 },
            DeviceAttributesReported r => s with { ReportedAttributes = r.Attributes },
            DeviceAttributesSet o => s with { OperatorAttributes = o.Attributes },
            _ => s,
        };
        var seq = DeviceRequestSequence.Of(e);
        return seq > next.LastRequestSequence ? next with { EventCount = sequenceNr, LastRequestSequence = seq } : next with { EventCount = sequenceNr };
    }

    // A device its rollout gave up on is a failure in every view (device list, device show, dashboard), not an idle
    // device: it keeps its attempt count and gets the rollout's reason as its last failure until new work replaces it.
    // A device that timed out is often one that stopped talking (Offline): it is shown as Failed all the same, and goes
    // Offline again only after a new silence period.
    private static DeviceState GaveUp(DeviceState s, AssignmentCancelled g) => s with
    {
        Status = DeviceStatus.Failed, StatusBeforeOffline = null, Target = null, Work = null, Progress = null,
        LastFailure = new FailureInfo(s.LastFailure?.Stage ?? WorkPhase.Download, g.Reason, s.FailedAttempts, 0, g.At),
    };

    // While Offline, status changes caused by operators land in StatusBeforeOffline, so the device resumes into them.
    private static DeviceState WithStatus(DeviceState s, DeviceStatus status) =>
        s.Status == DeviceStatus.Offline ? s with { StatusBeforeOffline = status } : s with { Status = status };

    // One copy of the state per check-in (it is the most frequent event, and every copy is garbage for the collector).
    private static DeviceState ApplyCheckIn(DeviceState s, DeviceCheckedIn c, long eventCount)
    {
        // The same work again (the agent restarted or retries): keep progress and the persisted attempt count.
        var keep = c.Work is not null && SameWork(s.Work, c.Work);
        // Given up by its rollout (Failed without work): a check-in with nothing to do leaves that failure visible.
        var givenUp = c.Work is null && s.Work is null && s.Status == DeviceStatus.Failed;
        return s with
        {
            Product = c.Product, InstalledVersionId = c.InstalledVersionId, InventoryDigest = c.InventoryDigest,
            FloorVersionId = Math.Max(s.FloorVersionId, c.InstalledVersionId),
            AgentVersion = c.AgentVersion ?? s.AgentVersion, LastSeen = c.At,
            Status = givenUp ? DeviceStatus.Failed : c.Work is null ? DeviceStatus.Idle : c.Work.Kind == WorkKind.Upgrade ? DeviceStatus.UpgradeAssigned : DeviceStatus.RepairNeeded,
            Work = c.Work,
            Progress = keep ? s.Progress : null,
            FailedAttempts = keep || givenUp ? s.FailedAttempts : 0,
            LastFailure = keep || givenUp ? s.LastFailure : null,
            EventCount = eventCount,
            LastRequestSequence = Math.Max(s.LastRequestSequence, c.RequestSequence),
        };
    }

    private static DeviceState ApplyTarget(DeviceState s, TargetAssigned t)
    {
        var assigned = s with { Target = t.Target };
        if (s.Status == DeviceStatus.Unknown || t.Target.VersionId == s.InstalledVersionId && s.Work is null)
            return assigned; // never seen, or already there: the next check-in decides.
        var work = new WorkItem(WorkKind.Upgrade, t.Target.Version, t.Target.VersionId, t.Target.ManifestPath, []);
        if (SameWork(s.Work, work)) return assigned;
        return WithStatus(assigned with { Work = work, Progress = null, FailedAttempts = 0, LastFailure = null }, DeviceStatus.UpgradeAssigned);
    }

    /// <summary>
    /// What is left of the retry delay the device was told after its last failure, when this check-in would hand out
    /// that same work again before it is over; null otherwise. The server honours the backoff it announced: work is
    /// not re-offered early, whatever the agent does.
    /// </summary>
    private static TimeSpan? AnnouncedWait(DeviceState s, WorkItem? work, DateTimeOffset at)
    {
        if (s.Status != DeviceStatus.Failed || s.LastFailure is not { } f || !SameWork(s.Work, work)) return null;
        var left = f.At + TimeSpan.FromMilliseconds(f.RetryAfterMs) - at;
        return left > TimeSpan.Zero ? left : null;
    }

    private static bool SameWork(WorkItem? a, WorkItem? b) =>
        a is not null && b is not null && a.Kind == b.Kind && a.VersionId == b.VersionId && a.RepairFiles.SequenceEqual(b.RepairFiles);
}
