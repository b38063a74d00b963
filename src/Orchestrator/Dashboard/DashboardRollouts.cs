using Akka.Actor;
using Akka.Hosting;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Rollouts;

namespace Orchestrator.Node.Dashboard;

/// <summary>Rollouts for the dashboard, from the rollout coordinator singleton (through its proxy).</summary>
internal static class DashboardRollouts
{
    /// <summary>Rollouts drawn in full (waves and failures) per page; unfinished ones first, then the most recently changed.</summary>
    public const int PageSize = 10;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Page <paramref name="page"/> (0-based) of the rollouts and how many there are: only that page's rollouts are asked
    /// for their full view, so the dashboard's cost does not grow with the rollouts kept.
    /// </summary>
    public static async Task<(bool Available, IReadOnlyList<DashboardRollout> Rollouts, int Total)> ReadAsync(IServiceProvider services, int page,
        CancellationToken ct)
    {
        var proxy = services.GetService<IRequiredActor<RolloutCoordinatorProxy>>();
        if (proxy is null) return (false, [], 0);
        var coordinator = await proxy.GetAsync(ct).ConfigureAwait(false);
        RolloutList list;
        try { list = await coordinator.Ask<RolloutList>(new ListRollouts(true), Timeout, ct).ConfigureAwait(false); }
        catch (AskTimeoutException) { return (false, [], 0); } // no node with role 'rollouts' is up: the page says so
        var ordered = list.Rollouts
            .OrderBy(r => r.Status is RolloutStatus.Completed or RolloutStatus.Aborted or RolloutStatus.RolledBack)
            .ThenByDescending(r => r.UpdatedAt)
            .ThenBy(r => r.RolloutId, StringComparer.Ordinal)
            .Skip(page * PageSize).Take(PageSize);
        var views = await Task.WhenAll(ordered.Select(async r =>
        {
            try { return await coordinator.Ask<object>(new GetRollout(r.RolloutId), Timeout, ct).ConfigureAwait(false) as RolloutView; }
            catch (AskTimeoutException) { return null; }
        })).ConfigureAwait(false);
        var shown = views.OfType<RolloutView>()
            .Select(v => new DashboardRollout(v.Spec.RolloutId, v.Spec.Target.Product, v.Spec.Target.Version, v.Status.ToString(), v.CurrentWave,
                v.PauseReason,
                [.. v.Waves.Select(w => new DashboardWave(w.Wave, w.Total, w.Pending, w.InProgress, w.Succeeded, w.Failed, w.Failing))],
                [.. v.Failures.Select(f => new DashboardRolloutFailure(f.DeviceId, f.Wave, f.Reason, f.Failing))],
                v.UpdatedAt, v.Rollback))
            .ToList();
        return (true, shown, list.Rollouts.Count);
    }
}
