using System.Diagnostics;

namespace Orchestrator.Node.Auth;

/// <summary>
/// Loads the stored device request keys into the credential cache once when the node starts
/// (<see cref="CredentialCacheOptions.PreloadAtStart"/>, <see cref="DeviceCredentialStore.PreloadAsync"/>), in the
/// background: the node serves meanwhile (a check-in that comes first reads its own key) but reports ready only once it
/// is done (<see cref="Observability.WarmUpHealthCheck"/>). Registered after <see cref="CredentialChangeHosting"/>, so
/// revocations announced during the load already evict.
/// </summary>
public sealed class CredentialPreload(DeviceCredentialStore store, CredentialCacheOptions options, ILogger<CredentialPreload> log) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _loading = Task.CompletedTask;

    /// <summary>True once the load ended (or was never started); a failed load ends it too, leaving keys to be read one by one.</summary>
    public bool Finished => _loading.IsCompleted;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.PreloadAtStart) _loading = Task.Run(LoadAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task LoadAsync()
    {
        var watch = Stopwatch.StartNew();
        try
        {
            var keys = await store.PreloadAsync(_stopping.Token).ConfigureAwait(false);
            log.LogInformation("Loaded {Keys} device request keys into the credential cache in {Ms} ms", keys, watch.ElapsedMilliseconds);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            log.LogWarning(ex, "Could not load the device request keys at start ({Keys} loaded); each device's key is read at its next check-in. " +
                "Check the node database, or set Credentials:PreloadAtStart=false", store.Preloaded);
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try { await _loading.WaitAsync(cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }
}
