using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Storage;

namespace Orchestrator.Node.Observability;

/// <summary>Ready when this node is an Up member of the cluster.</summary>
public sealed class ClusterMemberHealthCheck(ActorSystem system) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var status = Cluster.Get(system).SelfMember.Status;
        return Task.FromResult(status == MemberStatus.Up
            ? HealthCheckResult.Healthy("cluster member Up")
            : HealthCheckResult.Unhealthy($"cluster member status is {status}"));
    }
}

/// <summary>Ready when the node database answers.</summary>
public sealed class DatabaseHealthCheck(NodeDatabase db) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await db.PingAsync(cancellationToken).ConfigureAwait(false)
            ? HealthCheckResult.Healthy("database reachable")
            : HealthCheckResult.Unhealthy("database unreachable");
}

/// <summary>
/// Ready once what a restarted node loads in the background to answer check-ins at full speed is loaded: the device
/// request keys (<see cref="CredentialPreload"/>) and, on a gateway that answers idle check-ins without the actors, the
/// registry's fold of the journal (<see cref="DeviceRowTable.CaughtUp"/>). Until then the node answers every check-in,
/// more slowly (a key read or an actor recovery per device), so a load balancer should send it devices only after this.
/// </summary>
public sealed class WarmUpHealthCheck(CredentialPreload credentials, DeviceCredentialStore store, DeviceRowTable rows, NodeSettings settings) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!credentials.Finished)
            return Task.FromResult(HealthCheckResult.Unhealthy($"loading device request keys into the credential cache ({store.Preloaded} so far)"));
        if (settings.HasRole(NodeRoles.Gateway) && settings.Gateway.AnswerIdleWithoutActor && !rows.CaughtUp)
            return Task.FromResult(HealthCheckResult.Unhealthy("the device registry is folding the journal; until it has, idle check-ins recover their device actors"));
        return Task.FromResult(HealthCheckResult.Healthy("credential keys loaded, device registry caught up"));
    }
}
