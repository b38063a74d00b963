using Akka.Configuration;

namespace Orchestrator.Messages.Serialization;

/// <summary>HOCON that binds every <see cref="IOrchestratorMessage"/> to <see cref="OrchestratorSerializer"/>.</summary>
public static class OrchestratorSerialization
{
    /// <summary>The serializer registration and binding; include it in every actor system of the cluster.</summary>
    public const string Hocon = """
        akka.actor {
          serializers {
            orchestrator = "Orchestrator.Messages.Serialization.OrchestratorSerializer, Orchestrator.Messages"
          }
          serialization-bindings {
            "Orchestrator.Messages.IOrchestratorMessage, Orchestrator.Messages" = orchestrator
          }
          serialization-identifiers {
            "Orchestrator.Messages.Serialization.OrchestratorSerializer, Orchestrator.Messages" = 7131
          }
        }
        """;

    /// <summary><see cref="Hocon"/> parsed.</summary>
    public static Config Config => ConfigurationFactory.ParseString(Hocon);
}
