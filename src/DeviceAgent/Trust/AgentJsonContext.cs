using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Trust;

/// <summary>Source-generated JSON of the agent's own records (trust state, version record, install journal) (no reflection-based JSON in the AOT agent).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(VersionRecord))]
[JsonSerializable(typeof(TrustState))]
[JsonSerializable(typeof(Install.InstallJournal))]
internal sealed partial class AgentJsonContext : JsonSerializerContext;
