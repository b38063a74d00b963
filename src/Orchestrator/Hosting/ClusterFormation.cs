using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Discovery.Config.Hosting;
using Akka.Discovery.KubernetesApi;
using Akka.Hosting;
using Akka.Management;
using Akka.Management.Dsl;
using Akka.Management.Cluster.Bootstrap;
using Akka.Management.Cluster.Bootstrap.ContactPoint;
using Microsoft.AspNetCore.Hosting.Server;

namespace Orchestrator.Node.Hosting;

/// <summary>
/// How the node joins its cluster: static seeds (<see cref="NodeOptions.SeedNodes"/>), a cluster of its own (neither
/// seeds nor discovery), or Akka Cluster Bootstrap with config or Kubernetes API discovery (<see cref="NodeOptions.Discovery"/>).
/// Bootstrap runs without Akka.Management's HTTP server: that server (Akka.Http.Shim on Ceen.Httpd) cannot start
/// with the Ceen.Httpd our package source serves (deploy/k8s/README.md). The node's own Kestrel serves the one
/// route bootstrap needs, <see cref="SeedNodesPath"/>, and tells ClusterBootstrap its own contact point.
/// </summary>
public static class ClusterFormation
{
    /// <summary>The contact-point route the bootstrap coordinators of the other nodes probe (Akka.Management's path).</summary>
    public const string SeedNodesPath = "/bootstrap/seed-nodes";

    /// <summary>Configures discovery and Cluster Bootstrap (not auto-started), or the single-node self-join.</summary>
    public static AkkaConfigurationBuilder AddClusterFormation(this AkkaConfigurationBuilder builder, NodeOptions node)
    {
        switch (node.Discovery)
        {
            case "config":
                builder.WithConfigDiscovery(new ConfigServiceDiscoveryOptions
                {
                    Services = [new Service { Name = node.DiscoveryServiceName, Endpoints = [.. node.DiscoveryEndpoints] }],
                });
                break;
            case "kubernetes-api":
                builder.WithKubernetesDiscovery(new KubernetesDiscoveryOptions { PodLabelSelector = "app.kubernetes.io/name={0}" });
                break;
            default:
                // No seeds configured: this node is a cluster of its own (the single-node default).
                if (node.SeedNodes.Count == 0)
                    builder.AddStartup((system, _) =>
                    {
                        var cluster = Cluster.Get(system);
                        cluster.Join(cluster.SelfAddress);
                    });
                return builder;
        }
        // autoStart false: auto-start would start Akka.Management's HTTP server first. StartBootstrap starts it instead.
        builder.WithClusterBootstrap(new ClusterBootstrapOptions
        {
            ContactPointDiscovery =
            {
                ServiceName = node.DiscoveryServiceName,
                PortName = node.Discovery == "kubernetes-api" ? node.KubernetesPortName : null,
                RequiredContactPointsNr = node.DiscoveryContactPoints,
            },
            // Discovery lists exactly the HTTP contact points; several nodes may share a host (deploy/local), and the
            // filter would keep only the ones on the fallback port.
            ContactPoint = { FilterOnFallbackPort = false },
        }, autoStart: false);
        return builder;
    }

    /// <summary>
    /// Stops the node with exit code 1 when Akka gave up joining the cluster after <see cref="NodeOptions.JoinTimeout"/>
    /// (its actor system terminates with <see cref="CoordinatedShutdown.ClusterJoinUnsuccessfulReason"/>): a node without
    /// an actor system answers nothing, and only a new process can join as a new incarnation.
    /// </summary>
    public static void StopWhenJoinFails(this WebApplication app)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ClusterFormation));
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var system = app.Services.GetRequiredService<ActorSystem>();
            _ = system.WhenTerminated.ContinueWith(_ =>
            {
                if (CoordinatedShutdown.Get(system).ShutdownReason is not CoordinatedShutdown.ClusterJoinUnsuccessfulReason) return;
                log.LogCritical("The node did not join its cluster within Node:JoinTimeout; stopping with exit code 1 so its supervisor starts it again. " +
                                "Check that the seed nodes or discovered contact points are up and reachable at their Akka addresses");
                Environment.ExitCode = 1;
                app.Lifetime.StopApplication();
            }, TaskScheduler.Default);
        });
    }

    /// <summary>
    /// Serves <see cref="SeedNodesPath"/> when the node forms its cluster through bootstrap: this node's address and the
    /// reachable members that are joining or up, in the JSON (Newtonsoft, <see cref="HttpBootstrapJsonProtocol.SeedNodes"/>)
    /// the probing coordinator deserializes. 503 while this node is leaving, down or shut down, so nobody joins through it.
    /// </summary>
    public static void MapClusterBootstrap(this WebApplication app, NodeOptions node)
    {
        if (node.Discovery.Length == 0) return;
        app.MapGet(SeedNodesPath, (ActorSystem system) =>
        {
            var cluster = Cluster.Get(system);
            // Before it joins, a node's own member reads Removed; it must still answer (with no members) so the lowest
            // node can see every contact point and form the cluster. Removed after membership ends with a terminated cluster.
            if (cluster.IsTerminated || cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving)
                return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
            var state = cluster.State;
            var members = state.Members
                .Where(m => !state.Unreachable.Contains(m) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining)
                .Select(m => new HttpBootstrapJsonProtocol.ClusterMember(m.Address, m.UniqueAddress.Uid, m.Status, m.Roles))
                .ToImmutableList();
            var body = Newtonsoft.Json.JsonConvert.SerializeObject(new HttpBootstrapJsonProtocol.SeedNodes(cluster.SelfAddress, members));
            return Results.Content(body, "application/json");
        });
        app.Lifetime.ApplicationStarted.Register(() => StartBootstrap(app, node));
    }

    // Once Kestrel listens (its port is the contact point's), hand ClusterBootstrap this node's contact point, as
    // Akka.Management's server would when it binds, and start the coordinator.
    private static void StartBootstrap(WebApplication app, NodeOptions node)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ClusterFormation));
        var system = app.Services.GetRequiredService<ActorSystem>();
        var listening = ServerAddresses.PlainHttp(app.Services.GetRequiredService<IServer>()).FirstOrDefault();
        if (listening is null)
        {
            log.LogCritical("Cluster Bootstrap cannot start: the node serves no plain HTTP address for its contact point ({Path}); set Urls to an http:// address", SeedNodesPath);
            app.Lifetime.StopApplication();
            return;
        }
        var self = new Uri($"http://{(string.IsNullOrWhiteSpace(node.ContactPointHost) ? node.Hostname : node.ContactPointHost)}:{listening.Port}/");
        var bootstrap = ClusterBootstrap.Get(system);
        bootstrap.Routes(ManagementRouteProviderSettings.Create(self, readOnly: true));
        log.LogInformation("Cluster Bootstrap: discovery {Method}, service {Service}, contact point {Self}", node.Discovery, node.DiscoveryServiceName, self);
        _ = bootstrap.Start().ContinueWith(t =>
        {
            if (t.Exception is { } e)
            {
                log.LogCritical(e.GetBaseException(), "Cluster Bootstrap failed to start; stopping the node");
                app.Lifetime.StopApplication();
            }
        }, TaskScheduler.Default);
    }
}
