namespace Orchestrator.Node.Dashboard;

/// <summary>Rollouts for the dashboard. Rollouts are served by the rollout coordinator (branch rollouts); until it is
/// part of the node there is nothing to ask and the dashboard says so.</summary>
internal static class DashboardRollouts
{
    public static Task<(bool Available, IReadOnlyList<DashboardRollout> Rollouts)> ReadAsync(IServiceProvider services, CancellationToken ct) =>
        Task.FromResult<(bool, IReadOnlyList<DashboardRollout>)>((false, []));
}
