using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Orchestrator.Node.Hosting;

/// <summary>The addresses Kestrel listens on, as URIs: what the node's own contact points and probes are built from.</summary>
public static class ServerAddresses
{
    /// <summary>
    /// The plain-HTTP addresses among <paramref name="addresses"/> (<see cref="IServerAddressesFeature.Addresses"/>), in
    /// their order, Kestrel's wildcard hosts (<c>+</c>, <c>*</c>) written as <c>0.0.0.0</c> so that they parse as URIs.
    /// </summary>
    public static IEnumerable<Uri> PlainHttp(IEnumerable<string>? addresses)
    {
        foreach (var address in addresses ?? [])
        {
            if (!address.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) continue;
            var uri = address.Replace("://+:", "://0.0.0.0:", StringComparison.Ordinal).Replace("://*:", "://0.0.0.0:", StringComparison.Ordinal);
            if (Uri.TryCreate(uri, UriKind.Absolute, out var parsed) && parsed.Port > 0) yield return parsed;
        }
    }

    /// <summary>The plain-HTTP addresses <paramref name="server"/> listens on (see <see cref="PlainHttp(IEnumerable{string}?)"/>).</summary>
    public static IEnumerable<Uri> PlainHttp(IServer server) => PlainHttp(server.Features.Get<IServerAddressesFeature>()?.Addresses);
}
