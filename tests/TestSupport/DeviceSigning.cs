using Orchestrator.Messages.Protocol;

namespace Orchestrator.TestSupport;

/// <summary>
/// The one signing helper of the tests (protocol v2, <see cref="DeviceRequestSignature"/>). Mark a request with
/// <see cref="SignAs"/> and send it through a client built on <see cref="Handler"/>; the handler signs it at send time,
/// over the final method, path, query and body, with a sequence number from a process-wide counter (so every
/// device's numbers increase, whichever test sends them). <see cref="SignAsync"/> signs in place for clients without
/// the handler.
/// </summary>
public static class DeviceSigning
{
    private static readonly HttpRequestOptionsKey<(string DeviceId, string Secret)> Device = new("orch.test.device");
    private static long _last;

    /// <summary>Asks the signing handler to sign <paramref name="request"/> as <paramref name="deviceId"/>.</summary>
    public static void SignAs(HttpRequestMessage request, string deviceId, string secret) => request.Options.Set(Device, (deviceId, secret));

    /// <summary>Signs <paramref name="request"/> now (its content must be final).</summary>
    public static Task SignAsync(HttpRequestMessage request, string deviceId, string secret, CancellationToken ct = default) =>
        new DeviceRequestSigner(deviceId, secret, NextSequence).SignAsync(request, ct);

    /// <summary>A header value signed for the given request parts (for scripted hostile clients that build requests by hand).</summary>
    public static string Header(string deviceId, string secret, string method, string pathAndQuery, byte[] body, long sequence, long unixSeconds) =>
        DeviceRequestSignature.Scheme + " " + DeviceRequestSignature.Sign(DeviceRequestSignature.DeriveRequestKey(secret), method, pathAndQuery, deviceId,
            sequence, unixSeconds, body);

    /// <summary>The next sequence number: max(last + 1, Unix milliseconds), process-wide.</summary>
    public static long NextSequence()
    {
        while (true)
        {
            var last = Interlocked.Read(ref _last);
            var next = Math.Max(last + 1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            if (Interlocked.CompareExchange(ref _last, next, last) == last) return next;
        }
    }

    /// <summary>A handler that signs requests marked with <see cref="SignAs"/> and passes the rest unchanged.</summary>
    public static DelegatingHandler Handler(HttpMessageHandler? inner = null) => new SigningHandler { InnerHandler = inner ?? new HttpClientHandler() };

    private sealed class SigningHandler : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Options.TryGetValue(Device, out var device))
                await SignAsync(request, device.DeviceId, device.Secret, cancellationToken).ConfigureAwait(false);
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
    }
}
