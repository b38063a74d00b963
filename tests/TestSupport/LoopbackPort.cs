using System.Net;
using System.Net.Sockets;

namespace Orchestrator.TestSupport;

/// <summary>Ports for processes a test starts itself (nodes, nginx) that must be told their port up front.</summary>
public static class LoopbackPort
{
    /// <summary>A loopback port that was free a moment ago (the OS picks it; another process could still take it).</summary>
    public static int Free()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
