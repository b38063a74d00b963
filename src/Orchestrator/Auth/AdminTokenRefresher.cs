namespace Orchestrator.Node.Auth;

/// <summary>
/// Reloads the admin token rows from the node database every <see cref="AdminTokens.RefreshInterval"/>, so tokens
/// created or revoked through another node of the cluster take effect here. A failed reload keeps the last snapshot
/// (and is logged): the admin API stays usable while the database is briefly unreachable.
/// </summary>
internal sealed class AdminTokenRefresher(AdminTokenStore store, AdminTokens tokens, ILogger<AdminTokenRefresher> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(AdminTokens.RefreshInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                tokens.Refresh(await store.LoadAsync(stoppingToken).ConfigureAwait(false));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning(e, "Reloading admin tokens from the database failed; the last loaded set stays in force");
            }
        }
    }
}
