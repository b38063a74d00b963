namespace Orchestrator.Messages;

/// <summary>
/// Marker for every message that crosses a process boundary or is persisted. The serialization binding in
/// <see cref="Serialization.OrchestratorSerialization"/> routes all of them to
/// <see cref="Serialization.OrchestratorSerializer"/>, so no type of ours ever falls back to Akka's default
/// serializer.
/// </summary>
public interface IOrchestratorMessage;
