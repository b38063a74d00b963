using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Diagnostics.HealthChecks;
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
