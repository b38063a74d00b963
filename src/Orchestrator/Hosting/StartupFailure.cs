using System.Net.Sockets;

namespace Orchestrator.Node.Hosting;

/// <summary>Turns the ways a node fails to start into one line naming the cause and the fix (printed, exit code 2).</summary>
public static class StartupFailure
{
    /// <summary>The operator-facing message for <paramref name="e"/>, or null when it is not a known start-up failure.</summary>
    public static string? Describe(Exception e) => e switch
    {
        NodeStartupException s => s.Message,
        Orchestrator.DeviceActors.Persistence.Journal.JournalSchemaException j => j.Message,
        InvalidOperationException i when i.Message.StartsWith(NodeSettings.InvalidConfigurationHeading, StringComparison.Ordinal)
                                         || i.Message.StartsWith("Configuration cannot", StringComparison.Ordinal) => i.Message,
        InvalidDataException d when d.Message.StartsWith("Failed to load configuration", StringComparison.Ordinal) =>
            $"{d.Message} {d.InnerException?.Message} Fix the JSON syntax of that file.",
        IOException io when io.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || io.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) =>
            $"{io.Message} Another process (another node?) listens there; stop it or choose another address with --Urls=http://127.0.0.1:PORT.",
        UnauthorizedAccessException u => $"{u.Message} Run the node as a user that may write its data folder (Node:DataDirectory), or choose another folder.",
        _ => null,
    };
}
