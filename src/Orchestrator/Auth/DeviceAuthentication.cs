using Microsoft.AspNetCore.Http.Features;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Hosting;

namespace Orchestrator.Node.Auth;

/// <summary>Outcome of authenticating a device request.</summary>
/// <param name="DeviceId">The authenticated device, when <see cref="Error"/> is null.</param>
/// <param name="Error">Stable error code when authentication failed.</param>
/// <param name="Message">What was wrong, for the error body.</param>
/// <param name="Sequence">The request's authenticated sequence number (0 when authentication failed).</param>
/// <param name="Status">HTTP status of the failure: 401, or 413 when the body exceeds the limit.</param>
public readonly record struct DeviceAuthResult(string? DeviceId, string? Error, string? Message, long Sequence = 0, int Status = StatusCodes.Status401Unauthorized)
{
    /// <summary>True when the signature is valid and the timestamp fresh.</summary>
    public bool Succeeded => Error is null;
}

/// <summary>
/// Protocol v2 device authentication (<see cref="DeviceRequestSignature"/>): the request is signed with a key derived
/// from the device secret over method, path and query, device id, sequence, timestamp and the body's SHA-256, so
/// the secret never travels and a captured request cannot be altered. This layer checks the signature and that
/// the timestamp is within <see cref="GatewayOptions.DeviceClockSkewSeconds"/> of the gateway's clock; the device
/// actor then refuses sequences it has already seen on state-changing requests (check-in and reports). The body is
/// read here (bounded by <see cref="GatewayOptions.MaxRequestBodyBytes"/>) and handed on as a rewound buffer.
/// </summary>
public sealed class DeviceAuthentication(DeviceCredentialStore store, NodeSettings settings, TimeProvider clock)
{
    /// <summary>Checks the request's Authorization header and signature.</summary>
    public async ValueTask<DeviceAuthResult> AuthenticateAsync(HttpRequest request, CancellationToken ct)
    {
        var header = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
            return Fail("credential_missing", $"No Authorization header; sign the request: Authorization: {DeviceRequestSignature.Scheme} device=<id>, seq=<n>, ts=<unix seconds>, sig=<base64url> (docs/protocol.md, \"Device credentials\").");
        if (!SplitScheme(header, out var scheme, out var parameter))
            return Fail("credential_malformed", $"Authorization is not '<scheme> <parameters>'; use {DeviceRequestSignature.Scheme} device=<id>, seq=<n>, ts=<unix seconds>, sig=<base64url>.");
        if (!scheme.Equals(DeviceRequestSignature.Scheme, StringComparison.OrdinalIgnoreCase))
            return Fail("credential_malformed", scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase)
                ? $"Basic credentials are no longer accepted (protocol v2: the secret must not travel); sign the request with {DeviceRequestSignature.Scheme} (orch-agent sign-request)."
                : $"Authorization scheme '{scheme}' is not accepted; use {DeviceRequestSignature.Scheme}.");
        if (!DeviceRequestSignature.TryParse(parameter, out var auth, out var why))
            return Fail("credential_malformed", $"{DeviceRequestSignature.Scheme} parameters are malformed: {why}.");
        if (!DeviceCredentialStore.IsValidDeviceId(auth.DeviceId))
            return Fail("credential_invalid", "The device id in the signature is not a valid device id.");

        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        var skew = settings.Gateway.DeviceClockSkewSeconds;
        if (Math.Abs(now - auth.Timestamp) > skew)
            return Fail("timestamp_skew",
                $"The request was signed at Unix time {auth.Timestamp}, {auth.Timestamp - now:+#;-#;0} s from the gateway's clock ({now}); at most {skew} s " +
                "(Gateway:DeviceClockSkewSeconds) are accepted. Set the device's clock (NTP) and sign the request again.");

        var (body, tooLarge) = await ReadBodyAsync(request, settings.Gateway.MaxRequestBodyBytes, ct).ConfigureAwait(false);
        if (tooLarge is not null) return tooLarge.Value;
        var check = await store.VerifyAsync(auth, request.Method, RequestTarget(request), DeviceRequestSignature.BodyHash(body), ct).ConfigureAwait(false);
        return check == CredentialCheck.Valid
            ? new(auth.DeviceId, null, null, auth.Sequence)
            : Fail("credential_invalid",
                "The signature does not verify: the device has no credential, the key is wrong, or the method, path, body, seq or ts differ from what was signed.");
    }

    /// <summary>
    /// Splits <c>&lt;scheme&gt; &lt;parameters&gt;</c> (RFC 9110 credentials: a token, whitespace, the rest); false when either
    /// part is missing or the scheme is not a token. The parameters are parsed by <see cref="DeviceRequestSignature.TryParse(ReadOnlySpan{char}, out DeviceRequestAuthorization, out string)"/>.
    /// Both parts are slices of <paramref name="header"/>.
    /// </summary>
    internal static bool SplitScheme(string header, out ReadOnlySpan<char> scheme, out ReadOnlySpan<char> parameter)
    {
        scheme = parameter = default;
        var text = header.AsSpan().Trim();
        var gap = text.IndexOfAny(' ', '\t');
        if (gap <= 0) return false;
        var name = text[..gap];
        foreach (var ch in name)
            if (ch <= ' ' || ch >= 127 || "()<>@,;:\\\"/[]?={}".Contains(ch)) return false;
        var rest = text[(gap + 1)..].Trim();
        if (rest.IsEmpty) return false;
        scheme = name;
        parameter = rest;
        return true;
    }

    /// <summary>
    /// The request target as the client sent it (escaped path and query). Kestrel keeps it verbatim; servers that do not
    /// fall back to the re-escaped path, which equals it for every path the device API uses.
    /// </summary>
    private static string RequestTarget(HttpRequest request)
    {
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (!string.IsNullOrEmpty(raw) && raw.StartsWith('/')) return raw;
        return (request.PathBase + request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
    }

    // The signature covers the body, so it is read before the endpoint parses it; the endpoint then parses the same
    // bytes (AuthenticatedBody) or reads the rewound buffer. A small body with a Content-Length is read straight into one
    // array of that size; a larger or chunked one grows a buffer with the bytes that actually arrive, so a client that
    // announces a large body and sends little cannot make the gateway allocate what it announced before authentication.
    // A ValueTask: a check-in's body has almost always arrived with its headers, and the read then completes without a Task.
    private static async ValueTask<(byte[] Body, DeviceAuthResult? Error)> ReadBodyAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength is 0 || HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) return ([], null);
        if (request.ContentLength > maxBytes) return ([], TooLarge($"Request body is {request.ContentLength} bytes; the limit is {maxBytes} (Gateway:MaxRequestBodyBytes)."));
        byte[] body;
        try
        {
            if (request.ContentLength is { } length and <= ExactBodyBytes)
            {
                body = new byte[length];
                var read = 0;
                int n;
                while (read < body.Length && (n = await request.Body.ReadAsync(body.AsMemory(read), ct).ConfigureAwait(false)) > 0) read += n;
                // Kestrel ends the body at Content-Length; a shorter body is the client's error and fails the signature.
                if (read < body.Length) body = body[..read];
            }
            else
            {
                using var buffer = new MemoryStream();
                var chunk = new byte[16 * 1024];
                int n;
                while ((n = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
                {
                    if (buffer.Length + n > maxBytes) return ([], TooLarge($"Request body exceeds the limit of {maxBytes} bytes (Gateway:MaxRequestBodyBytes)."));
                    buffer.Write(chunk, 0, n);
                }
                body = buffer.ToArray();
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], TooLarge($"Request body exceeds the limit of {maxBytes} bytes (Gateway:MaxRequestBodyBytes)."));
        }
        request.Body = new MemoryStream(body, writable: false);
        request.HttpContext.Features.Set(new AuthenticatedBody(body));
        return (body, null);
    }

    private const int ExactBodyBytes = 64 * 1024;

    private static DeviceAuthResult Fail(string error, string message) => new(null, error, message);

    private static DeviceAuthResult TooLarge(string message) => new(null, "body_too_large", message, 0, StatusCodes.Status413PayloadTooLarge);
}

/// <summary>
/// The body bytes <see cref="DeviceAuthentication"/> read and verified (the signature covers them), left on the request's
/// features so the endpoint parses these bytes instead of reading the body a second time.
/// </summary>
/// <param name="Bytes">The whole request body.</param>
public sealed record AuthenticatedBody(byte[] Bytes);
