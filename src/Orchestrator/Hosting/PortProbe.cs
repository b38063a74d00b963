using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// Checks that the node's listening ports are free before anything starts, so a port conflict is one clear line
/// instead of a half-started node (the actor system up, Kestrel failing) and a stack trace.
/// </summary>
public static class PortProbe
{
    /// <summary>
    /// Throws <see cref="NodeStartupException"/> when another process listens on the node's remoting endpoint: a second
    /// node there would be a second cluster member claiming the first one's address.
    /// </summary>
    public static void EnsureRemotingFree(NodeOptions node)
    {
        if (node.Port == 0) return;
        var host = string.IsNullOrWhiteSpace(node.BindHostname) ? node.Hostname : node.BindHostname;
        var problem = TryBind(host, node.Port);
        if (problem == SocketError.AddressAlreadyInUse)
            throw new NodeStartupException(
                $"cluster port {host}:{node.Port} (Node:Port) is already in use, probably by another node; stop it or set --Node:Port to a free port (0 picks one).");
        if (problem == SocketError.AddressNotAvailable)
            throw new NodeStartupException(
                $"cluster address {host} (Node:BindHostname / Node:Hostname) is not an address of this machine; set Node:BindHostname to a local interface, e.g. 0.0.0.0.");
    }

    /// <summary>Throws <see cref="NodeStartupException"/> when an HTTP address of <paramref name="urls"/> (the <c>Urls</c> setting) is taken.</summary>
    public static void EnsureHttpFree(string? urls)
    {
        foreach (var url in (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // Kestrel accepts wildcard hosts that Uri does not parse; they bind every interface.
            var normalized = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
            if (!Uri.TryCreate(normalized, UriKind.Absolute, out var uri) || uri.Port is 0 or -1) continue;
            var host = uri.Host == "localhost" ? "127.0.0.1" : uri.Host;
            if (TryBind(host, uri.Port) == SocketError.AddressAlreadyInUse)
                throw new NodeStartupException(
                    $"HTTP address {url} (Urls) is already in use, probably by another node; stop it or choose another with --Urls=http://127.0.0.1:PORT.");
        }
    }

    private static SocketError? TryBind(string host, int port)
    {
        IPAddress address;
        try
        {
            address = IPAddress.TryParse(host.Trim('[', ']'), out var ip) ? ip
                : Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? IPAddress.Any;
        }
        catch (SocketException)
        {
            return null; // an unresolvable name is reported by the component that binds it
        }
        using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.Bind(new IPEndPoint(address, port));
            return null;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
