using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Messages.Protocol;

/// <summary>
/// Source-generated JSON metadata of the device protocol bodies (web defaults: camelCase, enums as their own
/// converters say). The device agent is a Native AOT binary with reflection-based JSON disabled, so every body it
/// sends or reads goes through this context.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(CheckInRequest))]
[JsonSerializable(typeof(CheckInResponse))]
[JsonSerializable(typeof(ProgressReport))]
[JsonSerializable(typeof(FailureReport))]
[JsonSerializable(typeof(CompletionReport))]
[JsonSerializable(typeof(UpdaterLostReport))]
[JsonSerializable(typeof(ProblemResponse))]
public sealed partial class ProtocolJsonContext : JsonSerializerContext;
