using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// One place that serves the store layout over HTTP: the gateway (<c>…/v1/store/</c>, with the device credential)
/// or a plain mirror (no credential). Relative store paths are appended to <see cref="BaseUrl"/>.
/// </summary>
/// <param name="Name">For logs and failure reports.</param>
/// <param name="BaseUrl">Base URL ending in '/'.</param>
/// <param name="Signer">Signs each request with the device credential, for the gateway; null for plain mirrors.</param>
public sealed record StoreSource(string Name, Uri BaseUrl, DeviceRequestSigner? Signer)
{
    /// <summary>A plain mirror from a base URL (a trailing '/' is added when missing).</summary>
    public static StoreSource Mirror(string baseUrl) => new("mirror " + baseUrl, WithSlash(baseUrl), null);

    /// <summary>The gateway's store endpoint under <c>v1/store/</c>, every request signed by <paramref name="signer"/>.</summary>
    public static StoreSource Gateway(string gatewayBaseUrl, DeviceRequestSigner signer) =>
        new("gateway", new Uri(WithSlash(gatewayBaseUrl), "v1/store/"), signer);

    internal static Uri WithSlash(string url) => new(url.EndsWith('/') ? url : url + "/");

    /// <summary>Absolute URL of a store-relative path.</summary>
    public Uri Resolve(string relativePath) => new(BaseUrl, relativePath);
}
