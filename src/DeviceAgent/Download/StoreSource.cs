using System.Net.Http.Headers;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// One place that serves the store layout over HTTP: the gateway (<c>…/v1/store/</c>, with the device credential)
/// or a plain mirror (no credential). Relative store paths are appended to <see cref="BaseUrl"/>.
/// </summary>
/// <param name="Name">For logs and failure reports.</param>
/// <param name="BaseUrl">Base URL ending in '/'.</param>
/// <param name="Authorization">Device credential header for the gateway; null for plain mirrors.</param>
public sealed record StoreSource(string Name, Uri BaseUrl, AuthenticationHeaderValue? Authorization)
{
    /// <summary>A plain mirror from a base URL (a trailing '/' is added when missing).</summary>
    public static StoreSource Mirror(string baseUrl) => new("mirror " + baseUrl, WithSlash(baseUrl), null);

    /// <summary>The gateway's store endpoint under <c>v1/store/</c>, with the device credential.</summary>
    public static StoreSource Gateway(string gatewayBaseUrl, AuthenticationHeaderValue credential) =>
        new("gateway", new Uri(WithSlash(gatewayBaseUrl), "v1/store/"), credential);

    internal static Uri WithSlash(string url) => new(url.EndsWith('/') ? url : url + "/");

    /// <summary>Absolute URL of a store-relative path.</summary>
    public Uri Resolve(string relativePath) => new(BaseUrl, relativePath);
}
