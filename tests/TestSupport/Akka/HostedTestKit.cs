using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace Orchestrator.TestSupport.Akka;

/// <summary>
/// An Akka TestKit whose actor system is built the way the node builds its own: through Akka.Hosting extensions
/// (<c>AddDeviceActors</c>, <c>AddDevicePersistence</c>, ...) in a generic host, so tests run the production wiring
/// rather than a copy of its configuration. Terminating <see cref="Akka.TestKit.TestKitBase.Sys"/> models a crash;
/// <see cref="DisposeAsync"/> stops the host as a node shutdown does.
/// </summary>
public sealed class HostedTestKit : global::Akka.TestKit.Xunit2.TestKit, IAsyncDisposable
{
    private readonly IHost _host;

    private HostedTestKit(IHost host, ITestOutputHelper? output)
        : base(host.Services.GetRequiredService<ActorSystem>(), output)
    {
        _host = host;
        Registry = host.Services.GetRequiredService<ActorRegistry>();
    }

    /// <summary>The system's actor registry (shard regions, proxies and actors the extensions registered).</summary>
    public ActorRegistry Registry { get; }

    /// <summary>Starts a host whose actor system <paramref name="name"/> is configured by <paramref name="configure"/>.</summary>
    /// <param name="name">Actor system name (nodes of one cluster share it).</param>
    /// <param name="configure">The extensions under test.</param>
    /// <param name="output">Test output for Akka's log.</param>
    /// <param name="hocon">Test-only HOCON that overrides what the extensions set (log level, cluster transport, timings).</param>
    public static async Task<HostedTestKit> StartAsync(string name, Action<AkkaConfigurationBuilder> configure, ITestOutputHelper? output,
        string hocon = "")
    {
        var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka(name, builder =>
            {
                configure(builder);
                builder.AddHocon(hocon, HoconAddMode.Prepend);
                builder.AddHocon(DefaultConfig, HoconAddMode.Append);
            }))
            .Build();
        await host.StartAsync();
        return new HostedTestKit(host, output);
    }

    /// <summary>Stops the host (coordinated shutdown of the actor system) and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
