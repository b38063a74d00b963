using Akka.Actor;
using Orchestrator.Messages.Channels;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

/// <summary>
/// Tells the channel directory where a rollout stands, so the rollout's channel follows it: held while it runs, moved to
/// the target when it completes, moved back when it is rolled back. Sent after every persisted status change and after
/// recovery, and re-sent every poll interval until the directory acknowledged that status (the directory is idempotent),
/// so a crash or an unreachable directory delays a channel move but never loses it.
/// </summary>
internal sealed class RolloutChannelSync(IActorRef? channels, RolloutSettings settings)
{
    private const string RetryKey = "channel-sync";
    private RolloutStatus? _acknowledged;
    private RolloutStatus? _inFlight;

    /// <summary>Sends <paramref name="status"/> unless it is acknowledged or already on its way.</summary>
    public void Send(RolloutSpec spec, RolloutStatus status, IActorRef self)
    {
        if (channels is null || channels.IsNobody() || _acknowledged == status || _inFlight == status) return;
        _inFlight = status;
        var t = spec.Target;
        channels.Ask<object>(new SyncRolloutChannel(spec.RolloutId, t.Product, spec.Channel, new ChannelRelease(t.Version, t.VersionId, t.ManifestPath), status),
                settings.AskTimeout)
            .ContinueWith(r => new Result(status, r.IsCompletedSuccessfully && r.Result is RolloutChannelSynced), TaskScheduler.Default)
            .PipeTo(self);
    }

    /// <summary>True while the directory's answer to <paramref name="status"/> is awaited.</summary>
    public bool Awaiting(RolloutStatus status) => _inFlight == status;

    /// <summary>Records the directory's answer; sends the current status again when it differs or was not acknowledged.</summary>
    public void Settle(Result r, RolloutSpec? spec, RolloutStatus? current, IActorRef self, ITimerScheduler timers)
    {
        if (_inFlight == r.Status) _inFlight = null;
        if (r.Acknowledged) _acknowledged = r.Status;
        if (spec is null || current is not { } now || _acknowledged == now) return;
        if (r.Acknowledged) Send(spec, now, self);
        else if (!timers.IsTimerActive(RetryKey))
            timers.StartSingleTimer(RetryKey, new Retry(), settings.PollInterval);
    }

    /// <summary>The directory's answer to one status; local only.</summary>
    public sealed record Result(RolloutStatus Status, bool Acknowledged) : INoSerializationVerificationNeeded;

    /// <summary>Self-sent retry; local only.</summary>
    public sealed record Retry : INoSerializationVerificationNeeded;
}
