using System.Net.Http.Headers;
using System.Text;

namespace Orchestrator.Node.Auth;

/// <summary>Outcome of authenticating a device request.</summary>
/// <param name="DeviceId">The authenticated device, when <see cref="Error"/> is null.</param>
/// <param name="Error">Stable error code when authentication failed (always answered 401).</param>
/// <param name="Message">What was wrong, for the error body.</param>
public readonly record struct DeviceAuthResult(string? DeviceId, string? Error, string? Message)
{
    /// <summary>True when the credential is valid.</summary>
    public bool Succeeded => Error is null;
}

/// <summary>
/// Device credentials travel as HTTP Basic authentication: user = device id, password = secret
/// (<c>curl -u dev-1:SECRET</c>). Only over TLS in production; the gateway may sit behind a TLS terminator.
/// </summary>
public sealed class DeviceAuthentication(DeviceCredentialStore store)
{
    /// <summary>Checks the request's Authorization header.</summary>
    public async ValueTask<DeviceAuthResult> AuthenticateAsync(HttpRequest request, CancellationToken ct)
    {
        var header = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
            return new(null, "credential_missing", "No Authorization header; send Basic credentials: device id as user, the provisioned secret as password.");
        if (!AuthenticationHeaderValue.TryParse(header, out var parsed) || !string.Equals(parsed.Scheme, "Basic", StringComparison.OrdinalIgnoreCase) || parsed.Parameter is null)
            return new(null, "credential_malformed", "Authorization must use the Basic scheme: base64(deviceId:secret).");
        string decoded;
        try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(parsed.Parameter)); }
        catch (FormatException) { return new(null, "credential_malformed", "Basic credentials are not valid base64."); }
        // Device ids may contain ':' and secrets never do (base64url), so the last colon separates them.
        var colon = decoded.LastIndexOf(':');
        if (colon <= 0)
            return new(null, "credential_malformed", "Basic credentials must be deviceId:secret.");
        var deviceId = decoded[..colon];
        var secret = decoded[(colon + 1)..];
        if (!DeviceCredentialStore.IsValidDeviceId(deviceId) || secret.Length is 0 or > 256)
            return new(null, "credential_invalid", "Device id or secret is not valid.");
        var check = await store.VerifyAsync(deviceId, secret, ct).ConfigureAwait(false);
        return check == CredentialCheck.Valid
            ? new(deviceId, null, null)
            : new(null, "credential_invalid", "The device id and secret do not match a provisioned credential.");
    }
}
