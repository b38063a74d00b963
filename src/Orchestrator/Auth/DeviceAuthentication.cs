using System.Net.Http.Headers;
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
        if (!AuthenticationHeaderValue.TryParse(header, out var parsed) || parsed.Parameter is null)
            return Fail("credential_malformed", $"Authorization is not '<scheme> <parameters>'; use {DeviceRequestSignature.Scheme} device=<id>, seq=<n>, ts=<unix seconds>, sig=<base64url>.");
        if (!string.Equals(parsed.Scheme, DeviceRequestSignature.Scheme, StringComparison.OrdinalIgnoreCase))
            return Fail("credential_malformed", string.Equals(parsed.Scheme, "Basic", StringComparison.OrdinalIgnoreCase)
                ? $"Basic credentials are no longer accepted (protocol v2: the secret must not travel); sign the request with {DeviceRequestSignature.Scheme} (orch-agent sign-request)."
                : $"Authorization scheme '{parsed.Scheme}' is not accepted; use {DeviceRequestSignature.Scheme}.");
        if (!DeviceRequestSignature.TryParse(parsed.Parameter, out var auth, out var why))
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
    /// The request target as the client sent it (escaped path and query). Kestrel keeps it verbatim; servers that do not
    /// fall back to the re-escaped path, which equals it for every path the device API uses.
    /// </summary>
    private static string RequestTarget(HttpRequest request)
    {
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (!string.IsNullOrEmpty(raw) && raw.StartsWith('/')) return raw;
        return (request.PathBase + request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
    }

    // The signature covers the body, so it is read before the endpoint parses it; the endpoint then reads the buffer.
    private static async Task<(byte[] Body, DeviceAuthResult? Error)> ReadBodyAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength is 0 || HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) return ([], null);
        if (request.ContentLength > maxBytes) return ([], TooLarge($"Request body is {request.ContentLength} bytes; the limit is {maxBytes} (Gateway:MaxRequestBodyBytes)."));
        using var buffer = new MemoryStream();
        try
        {
            var chunk = new byte[16 * 1024];
            int n;
            while ((n = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > maxBytes) return ([], TooLarge($"Request body exceeds the limit of {maxBytes} bytes (Gateway:MaxRequestBodyBytes)."));
                buffer.Write(chunk, 0, n);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], TooLarge($"Request body exceeds the limit of {maxBytes} bytes (Gateway:MaxRequestBodyBytes)."));
        }
        var body = buffer.ToArray();
        request.Body = new MemoryStream(body, writable: false);
        return (body, null);
    }

    private static DeviceAuthResult Fail(string error, string message) => new(null, error, message);

    private static DeviceAuthResult TooLarge(string message) => new(null, "body_too_large", message, 0, StatusCodes.Status413PayloadTooLarge);
}
