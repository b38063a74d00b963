using Orchestrator.DeviceActors.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.TestSupport.Akka;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Infrastructure;

/// <summary>
/// Actor systems wired like a device node (the node's own Akka.Hosting extensions: our serializer, DeviceJournal,
/// Akka.Persistence.Sql's snapshots and read journal) with serialize-messages on.
/// </summary>
public static class DeviceTestKit
{
    private const string TestHocon = """
        akka.loglevel = WARNING
        akka.actor.serialize-messages = on
        """;

    /// <summary>A system with device persistence only (device actors are started with ActorOf).</summary>
    /// <param name="options">The test database.</param>
    /// <param name="output">Test output.</param>
    /// <param name="extra">HOCON on top (log level, serialize-messages, cluster transport).</param>
    public static Task<HostedTestKit> Start(DevicePersistenceOptions options, ITestOutputHelper? output, string extra = "") =>
        HostedTestKit.StartAsync("test", b => b.AddDevicePersistence(options), output, TestHocon + "\n" + extra);

    /// <summary>A cluster node of system <paramref name="name"/> hosting the device region (<see cref="DeviceActorsHosting.AddDeviceActors"/>).</summary>
    /// <param name="name">Actor system name, shared by the nodes of one cluster.</param>
    /// <param name="region">Region options (database, settings, shard count).</param>
    /// <param name="output">Test output.</param>
    /// <param name="extra">HOCON on top; it must make the provider <c>cluster</c>.</param>
    public static Task<HostedTestKit> StartRegionNode(string name, DeviceActorsHostingOptions region, ITestOutputHelper? output, string extra) =>
        HostedTestKit.StartAsync(name, b => b.AddDeviceActors(region), output, TestHocon + "\n" + extra);
}
