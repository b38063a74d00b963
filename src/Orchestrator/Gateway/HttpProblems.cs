using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.HttpResults;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.Node.Gateway;

/// <summary>Uniform error answers (ProblemResponse bodies) and the JSON settings of the device protocol.</summary>
public static class HttpProblems
{
    /// <summary>JSON of the device protocol: camelCase, enums as strings (DTO attributes), case-insensitive reads.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A ProblemResponse with the given status.</summary>
    public static JsonHttpResult<ProblemResponse> Problem(int status, string error, string message) =>
        TypedResults.Json(new ProblemResponse(error, message), Json, statusCode: status);

    /// <summary>
    /// Parses a body the caller has already read (and bounded), with the same answers as <see cref="ReadJsonAsync{T}"/>:
    /// the value, or an error result (415 not JSON, 400 malformed) and no value.
    /// </summary>
    public static (T? Value, IResult? Error) ParseJson<T>(HttpRequest request, ReadOnlySpan<byte> body, JsonTypeInfo<T> type) where T : class
    {
        if (!IsJson(request)) return (null, NotJson());
        try
        {
            return Parsed(JsonSerializer.Deserialize(body, type));
        }
        catch (JsonException ex)
        {
            return (null, Malformed(ex));
        }
    }

    /// <summary>
    /// Reads a JSON body of at most <paramref name="maxBytes"/>. Returns the value, or an error result (413 too large,
    /// 415 not JSON, 400 malformed) and no value.
    /// </summary>
    public static async Task<(T? Value, IResult? Error)> ReadJsonAsync<T>(HttpRequest request, long maxBytes, CancellationToken ct) where T : class
    {
        if (request.ContentLength > maxBytes)
            return (null, Problem(StatusCodes.Status413PayloadTooLarge, "body_too_large", $"Request body is {request.ContentLength} bytes; the limit is {maxBytes} (Gateway:MaxRequestBodyBytes)."));
        if (!IsJson(request)) return (null, NotJson());
        try
        {
            return Parsed(await JsonSerializer.DeserializeAsync<T>(request.Body, Json, ct).ConfigureAwait(false));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problem(StatusCodes.Status413PayloadTooLarge, "body_too_large", $"Request body exceeds the limit of {maxBytes} bytes (Gateway:MaxRequestBodyBytes)."));
        }
        catch (JsonException ex)
        {
            return (null, Malformed(ex));
        }
    }

    /// <summary>
    /// <see cref="HttpRequestJsonExtensions.HasJsonContentType(HttpRequest)"/>, which parses the header into a media type
    /// object per request; the two values every agent sends are recognised without it, any other is parsed.
    /// </summary>
    internal static bool IsJson(HttpRequest request)
    {
        var type = request.ContentType.AsSpan();
        return type.Equals(JsonUtf8, StringComparison.OrdinalIgnoreCase) || type.Equals(JsonOnly, StringComparison.OrdinalIgnoreCase)
            || request.HasJsonContentType();
    }

    private const string JsonUtf8 = "application/json; charset=utf-8";
    private const string JsonOnly = "application/json";

    // The answers both readers give: the same body is refused the same way whichever of them parsed it.
    private static IResult NotJson() =>
        Problem(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type", "Send the body as Content-Type: application/json.");

    private static (T? Value, IResult? Error) Parsed<T>(T? value) where T : class =>
        value is null ? (null, Problem(StatusCodes.Status400BadRequest, "invalid_json", "Body is JSON null; send the documented object.")) : (value, null);

    private static IResult Malformed(JsonException ex) =>
        Problem(StatusCodes.Status400BadRequest, "invalid_json", $"Body is not the documented JSON object: {ex.Message}");
}
