using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.DeviceAgent.Configuration;

/// <summary>
/// Source-generated JSON of <c>agent.json</c>: comments and trailing commas allowed (a file people edit), unknown
/// properties refused (a misspelt option must not be silently ignored).
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    WriteIndented = true)]
[JsonSerializable(typeof(AgentConfig))]
internal sealed partial class AgentConfigJsonContext : JsonSerializerContext;
