using System.Collections.Immutable;
using Akka.Actor;
using Akka.Serialization;

namespace Orchestrator.Messages.Serialization;

/// <summary>The binding of every <see cref="IOrchestratorMessage"/> to <see cref="OrchestratorSerializer"/>.</summary>
public static class OrchestratorSerialization
{
    /// <summary>Serializer name in the actor system's serialization settings.</summary>
    public const string Name = "orchestrator";

    /// <summary>The types bound to the serializer (every contract implements the marker).</summary>
    public static IReadOnlyList<Type> BoundTypes { get; } = [typeof(IOrchestratorMessage)];

    /// <summary>
    /// The binding as an actor-system setup, for systems built without Akka.Hosting (the node's extension registers the
    /// same <see cref="Name"/> and <see cref="BoundTypes"/> with <c>WithCustomSerializer</c>).
    /// </summary>
    public static SerializationSetup Setup { get; } = SerializationSetup.Create(system =>
        ImmutableHashSet.Create(SerializerDetails.Create(Name, new OrchestratorSerializer(system), BoundTypes.ToImmutableHashSet())));
}
