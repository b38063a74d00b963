using Akka.Actor;
using Orchestrator.Messages.Rollouts;

namespace Orchestrator.Node.Rollouts;

// Messages between the coordinator and its child rollout actors. Parent and children always live in the same
// actor system (children of the singleton), so these never cross a process and are not in src/Messages.

/// <summary>Coordinator to a new rollout actor: persist the creation with these devices, then answer <paramref name="ReplyTo"/>.</summary>
internal sealed record StartRollout(RolloutSpec Spec, IReadOnlyList<string> DeviceIds, IActorRef ReplyTo) : INoSerializationVerificationNeeded;

/// <summary>Rollout actor to coordinator after recovery: the devices it claims (empty once finished).</summary>
internal sealed record RolloutClaims(string RolloutId, IReadOnlyList<string> DeviceIds) : INoSerializationVerificationNeeded;

/// <summary>Rollout actor to coordinator: may these newly matching devices join? Answered with <see cref="DevicesClaimed"/>.</summary>
internal sealed record ClaimDevices(string RolloutId, IReadOnlyList<string> DeviceIds) : INoSerializationVerificationNeeded;

/// <summary>The subset of a <see cref="ClaimDevices"/> no other active rollout holds.</summary>
internal sealed record DevicesClaimed(IReadOnlyList<string> DeviceIds) : INoSerializationVerificationNeeded;

/// <summary>Rollout actor to coordinator: finished; its devices are free for other rollouts.</summary>
internal sealed record ReleaseClaims(string RolloutId) : INoSerializationVerificationNeeded;

// Rollout actor to coordinator after every durable change: its RolloutSummary (the list is answered from these).
