using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Messages.Channels;

// The channel directory: one persistent cluster singleton (role "rollouts") that owns every product's channels and
// their current releases. Commands and replies cross the cluster (admin API and rollouts on any node); events and the
// snapshot are persisted; the directory view is also what distributed pub-sub carries to every node's cache.

/// <summary>A published release a channel points at.</summary>
/// <param name="Version">Version string.</param>
/// <param name="VersionId">Version ID (from the product's index.json).</param>
/// <param name="ManifestPath">Store-relative manifest path.</param>
public sealed record ChannelRelease(string Version, long VersionId, string ManifestPath);

/// <summary>A rollout that is moving the channel: its devices follow the rollout's target, the others the channel's release.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Target">The rollout's target; the channel's release once the rollout completes.</param>
/// <param name="Previous">The channel's release when the rollout started (null: none); a rollback returns to it.</param>
public sealed record ChannelHold(string RolloutId, ChannelRelease Target, ChannelRelease? Previous);

/// <summary>A rollout of the channel that finished (so a re-sent status of it changes nothing).</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Status">Completed, Aborted or RolledBack.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="Previous">The channel's release before the rollout (null: none, or unknown).</param>
public sealed record FinishedRollout(string RolloutId, RolloutStatus Status, ChannelRelease Target, ChannelRelease? Previous);

/// <summary>One change of a channel's current release.</summary>
/// <param name="Release">The release it moved to (null: none).</param>
/// <param name="Cause">Who or what moved it, e.g. <c>set by alice: hotfix</c>, <c>rollout ro-7 completed</c>.</param>
/// <param name="At">When.</param>
public sealed record ChannelChange(ChannelRelease? Release, string Cause, DateTimeOffset At);

/// <summary>One channel of a product: the answer of <c>channel show</c> and an element of the directory and its snapshot.</summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel name.</param>
/// <param name="Current">The current release (null: none yet; its devices get no upgrade from the channel).</param>
/// <param name="Rollouts">Rollouts moving the channel now.</param>
/// <param name="Finished">Rollouts of the channel that finished, oldest first.</param>
/// <param name="History">The last changes of the current release, oldest first (at most <see cref="MaxHistory"/>).</param>
/// <param name="UpdatedAt">Time of the last event.</param>
public sealed record ChannelView(
    string Product, string Channel, ChannelRelease? Current, IReadOnlyList<ChannelHold> Rollouts, IReadOnlyList<FinishedRollout> Finished,
    IReadOnlyList<ChannelChange> History, DateTimeOffset UpdatedAt) : IOrchestratorMessage
{
    /// <summary>Most history entries a channel keeps.</summary>
    public const int MaxHistory = 50;
}

/// <summary>
/// Every channel (or every channel of one product): the answer of <see cref="GetChannels"/> and the message published
/// to the <see cref="ChannelTopics.Changes"/> topic after every change.
/// </summary>
/// <param name="Channels">Channels ordered by product, then name.</param>
/// <param name="Revision">Sequence number of the directory's last event; caches keep the highest revision they saw.</param>
public sealed record ChannelDirectoryView(IReadOnlyList<ChannelView> Channels, long Revision) : IOrchestratorMessage;

/// <summary>Snapshot of the channel directory.</summary>
/// <param name="Channels">Every channel.</param>
public sealed record ChannelDirectorySnapshot(IReadOnlyList<ChannelView> Channels) : IOrchestratorMessage;

/// <summary>Distributed pub-sub topics of the channel directory.</summary>
public static class ChannelTopics
{
    /// <summary>Every change publishes the whole <see cref="ChannelDirectoryView"/> here.</summary>
    public const string Changes = "orch-channels";
}

/// <summary>Asks for the directory; answered with <see cref="ChannelDirectoryView"/>.</summary>
/// <param name="Product">Only this product's channels; null for all.</param>
public sealed record GetChannels(string? Product) : IOrchestratorMessage;

/// <summary>
/// Points a channel at a release (an operator, or the seed from a store channel file). The admin API checks that the
/// release is in the product's index first. Answered with the new <see cref="ChannelView"/> or <see cref="ChannelRejected"/>.
/// </summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel (created when it does not exist).</param>
/// <param name="Release">The release.</param>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why (recorded in the history).</param>
/// <param name="OnlyIfAbsent">True for a seed: change nothing when the channel exists already.</param>
public sealed record SetChannelRelease(string Product, string Channel, ChannelRelease Release, string Operator, string Reason, bool OnlyIfAbsent = false)
    : IOrchestratorMessage;

/// <summary>
/// A rollout tells the directory where it stands (after every status change and after its recovery, until
/// acknowledged with <see cref="RolloutChannelSynced"/>). Idempotent: the directory derives its events from what it
/// already knows about the rollout.
/// </summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Product">Product.</param>
/// <param name="Channel">The rollout's channel.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="Status">The rollout's status.</param>
public sealed record SyncRolloutChannel(string RolloutId, string Product, string Channel, ChannelRelease Target, RolloutStatus Status) : IOrchestratorMessage;

/// <summary>The directory recorded what <see cref="SyncRolloutChannel"/> said.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Status">The status acknowledged.</param>
public sealed record RolloutChannelSynced(string RolloutId, RolloutStatus Status) : IOrchestratorMessage;

/// <summary>A channel command was refused; nothing changed.</summary>
/// <param name="Code">Stable code: <c>invalid_channel</c>, <c>channel_in_rollout</c>.</param>
/// <param name="Message">What was wrong and how to fix it.</param>
public sealed record ChannelRejected(string Code, string Message) : IOrchestratorMessage;

/// <summary>What the gateway tells a device actor about one channel of the device's product at check-in.</summary>
/// <param name="Channel">Channel name.</param>
/// <param name="Current">Its current release (null: none).</param>
/// <param name="Rollouts">Rollouts moving it now: a device whose target comes from one of them follows that target.</param>
public sealed record ChannelTarget(string Channel, ChannelRelease? Current, IReadOnlyList<string> Rollouts);

// ---- persisted events (past tense; how a shape may change: OrchestratorSerializer) ----

/// <summary>Marker for every persisted event of the channel directory.</summary>
public interface IChannelEvent : IOrchestratorMessage
{
    /// <summary>Product.</summary>
    string Product { get; }
    /// <summary>Channel.</summary>
    string Channel { get; }
    /// <summary>When.</summary>
    DateTimeOffset At { get; }
}

/// <summary>
/// An operator (or the seed from a store channel file) pointed the channel at a release; devices held by aborted
/// rollouts follow the channel again from then on.
/// </summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel.</param>
/// <param name="Release">The release.</param>
/// <param name="Operator">Who (<c>store</c> for a seed).</param>
/// <param name="Reason">Why.</param>
/// <param name="At">When.</param>
public sealed record ChannelReleaseSet(string Product, string Channel, ChannelRelease Release, string Operator, string Reason, DateTimeOffset At) : IChannelEvent;

/// <summary>A rollout started moving the channel.</summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel.</param>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="At">When.</param>
public sealed record ChannelRolloutStarted(string Product, string Channel, string RolloutId, ChannelRelease Target, DateTimeOffset At) : IChannelEvent;

/// <summary>A rollout of the channel completed: the channel's release became its target.</summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel.</param>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="At">When.</param>
public sealed record ChannelRolloutCompleted(string Product, string Channel, string RolloutId, ChannelRelease Target, DateTimeOffset At) : IChannelEvent;

/// <summary>A rollout of the channel was rolled back: the channel returned to its release before the rollout.</summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel.</param>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="At">When.</param>
public sealed record ChannelRolloutRolledBack(string Product, string Channel, string RolloutId, ChannelRelease Target, DateTimeOffset At) : IChannelEvent;

/// <summary>
/// A rollout of the channel was aborted. Devices still holding its target keep following it (abort stops a rollout, it
/// does not undo it); the others follow the channel's release. The next <see cref="ChannelReleaseSet"/> or a rollback of
/// the rollout releases them to the channel.
/// </summary>
/// <param name="Product">Product.</param>
/// <param name="Channel">Channel.</param>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Target">The rollout's target.</param>
/// <param name="At">When.</param>
public sealed record ChannelRolloutAborted(string Product, string Channel, string RolloutId, ChannelRelease Target, DateTimeOffset At) : IChannelEvent;
