namespace Orchestrator.Messages.Rollouts;

// Commands to the rollout coordinator (cluster singleton on role "rollouts"); it forwards per-rollout commands to
// the rollout's actor. Every answer is a RolloutView, RolloutList or RolloutRejected.

/// <summary>A command about one rollout.</summary>
public interface IRolloutCommand : IOrchestratorMessage
{
    /// <summary>The rollout id.</summary>
    string RolloutId { get; }
}

/// <summary>Creates a rollout; answered with the new <see cref="RolloutView"/> or <see cref="RolloutRejected"/>.</summary>
/// <param name="Spec">The validated spec (target resolved from the store's release index).</param>
public sealed record CreateRollout(RolloutSpec Spec) : IRolloutCommand
{
    /// <inheritdoc />
    public string RolloutId => Spec.RolloutId;
}

/// <summary>Asks for one rollout with per-wave counters; answered with <see cref="RolloutView"/>.</summary>
/// <param name="RolloutId">Rollout id.</param>
public sealed record GetRollout(string RolloutId) : IRolloutCommand;

/// <summary>Asks for all rollouts; answered with <see cref="RolloutList"/>.</summary>
/// <param name="IncludeFinished">Include Completed, Aborted and RolledBack rollouts.</param>
public sealed record ListRollouts(bool IncludeFinished) : IOrchestratorMessage;

/// <summary>Stops assigning new devices; devices already assigned continue and are still counted.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why (recorded).</param>
public sealed record PauseRollout(string RolloutId, string Operator, string Reason) : IRolloutCommand;

/// <summary>Continues a paused rollout; failures counted so far are acknowledged (they no longer count against the error threshold).</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Operator">Who.</param>
public sealed record ResumeRollout(string RolloutId, string Operator) : IRolloutCommand;

/// <summary>Ends the rollout: unfinished assignments are cancelled, devices never assigned stay as they are.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why (recorded).</param>
public sealed record AbortRollout(string RolloutId, string Operator, string Reason) : IRolloutCommand;

/// <summary>Assigns every device the rollout touched its previous version (cancels the assignment where none was installed).</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Operator">Who.</param>
/// <param name="Reason">Why (recorded).</param>
/// <param name="Versions">The product's published releases, from the store's release index.</param>
public sealed record RollbackRollout(string RolloutId, string Operator, string Reason, IReadOnlyList<RollbackVersion> Versions) : IRolloutCommand;

/// <summary>Puts the devices that failed back into their waves' queues.</summary>
/// <param name="RolloutId">Rollout id.</param>
/// <param name="Operator">Who.</param>
public sealed record RetryFailedDevices(string RolloutId, string Operator) : IRolloutCommand;
