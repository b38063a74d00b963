namespace Orchestrator.Messages;

/// <summary>
/// Marker for every message that crosses a process boundary or is persisted. The serialization binding in
/// <c>OrchestratorSerialization</c> (project Messages.Serialization) routes all of them to
/// <c>OrchestratorSerializer</c>, so no type of ours ever falls back to Akka's default
/// serializer.
/// </summary>
public interface IOrchestratorMessage;
