using System.Buffers;
using System.Text.Json;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Gateway;

/// <summary>
/// A gateway's answer to a check-in: the protocol's fields and, when the node signed one, the directive
/// (<see cref="Trust.DirectorSigner.SignAsync"/>), whose envelope the answer writes into its <c>directive</c> string
/// straight from UTF-8. When <see cref="Directive"/> is null the answer's directive is <see cref="CheckInResponse.Directive"/>.
/// </summary>
/// <param name="Response">The answer's fields.</param>
/// <param name="Directive">The signed directive, or null.</param>
public sealed record CheckInAnswer(CheckInResponse Response, Trust.SignedDirective? Directive = null)
{
    /// <summary>An answer whose directive (if any) is the response's own.</summary>
    public static implicit operator CheckInAnswer(CheckInResponse response) => new(response);

    /// <summary>
    /// The directive's batch signature while it is under way (<see cref="Trust.DirectorSigner.SignAsync"/>), or null: its
    /// result is the answer's directive, and the answer is complete once it has finished. The gateway hands the answer
    /// over before that, so the one frame that writes it (<see cref="CheckInAdmission.AnswerAsync"/>) is the only one
    /// that waits for the signature.
    /// </summary>
    public Task<Trust.SignedDirective?>? Signing { get; init; }

    /// <summary>The directive the answer carries: its own, or its finished <see cref="Signing"/>'s; null when it has none.</summary>
    /// <exception cref="InvalidOperationException">The signature is still under way (await <see cref="Signing"/> first) or failed.</exception>
    public Trust.SignedDirective? SignedDirective => Directive ?? Signing switch
    {
        null => null,
        { IsCompletedSuccessfully: true } done => done.Result,
        _ => throw new InvalidOperationException("The answer's directive is not signed yet (or its signing failed); await CheckInAnswer.Signing before writing it."),
    };

    /// <summary>The answer as the protocol's DTO (the directive as a string), for callers that want the object.</summary>
    public CheckInResponse ToResponse() =>
        SignedDirective is not { } directive ? Response : Response with { Directive = System.Text.Encoding.UTF8.GetString(directive.ToBytes()) };
}

/// <summary>
/// Writes a <see cref="CheckInAnswer"/> as the check-in's JSON body: the same bytes the protocol's generated metadata
/// (<see cref="ProtocolJsonContext"/>) writes for <see cref="CheckInAnswer.ToResponse"/> — same names, order, escaping,
/// null fields omitted where the DTO says so — with the directive's envelope escaped into its string straight from UTF-8.
/// CheckInWireFormatTests pins the equality and that every property of the metadata is written here.
/// </summary>
public static class CheckInAnswerWriter
{
    /// <summary>The JSON property names in the order they are written (the generated metadata's).</summary>
    public static readonly IReadOnlyList<string> PropertyNames =
    [
        "action", "targetVersion", "targetVersionId", "manifestPath", "repairFiles", "grant", "nextCheckInSeconds",
        "mirrors", "deltaManifestPath", "mirrorsFirst", "directive", "compactManifests",
    ];

    /// <summary>Writes <paramref name="answer"/> to <paramref name="writer"/>.</summary>
    public static void Write(Utf8JsonWriter writer, CheckInAnswer answer)
    {
        var r = answer.Response;
        writer.WriteStartObject();
        writer.WritePropertyName("action"u8);
        switch (r.Action)
        {
            case UpdateAction.None: writer.WriteStringValue("None"u8); break;
            case UpdateAction.Upgrade: writer.WriteStringValue("Upgrade"u8); break;
            case UpdateAction.Repair: writer.WriteStringValue("Repair"u8); break;
            default: JsonSerializer.Serialize(writer, r.Action, ProtocolJsonContext.Default.UpdateAction); break;
        }
        if (r.TargetVersion is not null) writer.WriteString("targetVersion"u8, r.TargetVersion);
        if (r.TargetVersionId is { } id) writer.WriteNumber("targetVersionId"u8, id);
        if (r.ManifestPath is not null) writer.WriteString("manifestPath"u8, r.ManifestPath);
        WriteList(writer, "repairFiles"u8, r.RepairFiles);
        if (r.Grant is not null)
        {
            writer.WritePropertyName("grant"u8);
            JsonSerializer.Serialize(writer, r.Grant, ProtocolJsonContext.Default.DownloadGrant);
        }
        writer.WriteNumber("nextCheckInSeconds"u8, r.NextCheckInSeconds);
        WriteList(writer, "mirrors"u8, r.Mirrors);
        if (r.DeltaManifestPath is not null) writer.WriteString("deltaManifestPath"u8, r.DeltaManifestPath);
        writer.WriteBoolean("mirrorsFirst"u8, r.MirrorsFirst);
        if (answer.SignedDirective is { } directive) directive.WriteAsString(writer, "directive"u8);
        else if (r.Directive is not null) writer.WriteString("directive"u8, r.Directive);
        WriteList(writer, "compactManifests"u8, r.CompactManifests);
        writer.WriteEndObject();
    }

    private static void WriteList(Utf8JsonWriter writer, ReadOnlySpan<byte> name, IReadOnlyList<string>? list)
    {
        if (list is null) return;
        writer.WriteStartArray(name);
        foreach (var item in list) writer.WriteStringValue(item);
        writer.WriteEndArray();
    }
}

/// <summary>
/// The 200 answer of a check-in (<see cref="CheckInAnswerWriter"/>), with its Content-Length: written into a buffer of
/// the thread, then copied into the response in one piece.
/// </summary>
internal sealed class CheckInAnswerResult(CheckInAnswer answer) : IResult, IStatusCodeHttpResult
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>The answer written.</summary>
    public CheckInAnswer Answer => answer;

    /// <inheritdoc />
    public int? StatusCode => StatusCodes.Status200OK;

    /// <inheritdoc />
    public Task ExecuteAsync(HttpContext httpContext)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        CheckInAnswerWriter.Write(writer, answer);
        writer.Flush();
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength = buffer.WrittenCount;
        var body = response.BodyWriter;
        buffer.WrittenSpan.CopyTo(body.GetSpan(buffer.WrittenCount));
        body.Advance(buffer.WrittenCount);
        if (buffer.Capacity > 64 * 1024) t_buffer = null; // a rare huge answer (a long repair list) is not kept per thread
        var flush = body.FlushAsync(httpContext.RequestAborted);
        return flush.IsCompletedSuccessfully ? Task.CompletedTask : flush.AsTask();
    }
}
