using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// Source-generated JSON metadata of every trust document: the device agent ships as a Native AOT binary and uses
/// no reflection-based JSON. Web defaults (camelCase), enums by name, unknown properties refused, so a document
/// means exactly what was signed.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(SignedEnvelope))]
[JsonSerializable(typeof(RootDocument))]
[JsonSerializable(typeof(Directive))]
[JsonSerializable(typeof(ProductFloor))]
internal sealed partial class TrustJsonContext : JsonSerializerContext;
