using System.Diagnostics.Metrics;
using Akka.Actor;
using Akka.Hosting;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Node.Admin;
using Orchestrator.Node.Hosting;
using Orchestrator.Node.Rollouts;

namespace Orchestrator.Node.Observability;

/// <summary>
/// Prometheus gauges of the fleet and its rollouts (meter <see cref="MeterName"/>), next to the gateway's counters:
/// devices per status, stale devices, and each unfinished rollout's device counts, wave and status. Gauges are read
/// from a snapshot refreshed every <see cref="GatewayOptions.FleetGaugeRefreshSeconds"/> from the device registry read
/// model and the rollout coordinator, so a scrape costs nothing and never waits for an actor.
/// </summary>
public sealed class FleetGauges(IServiceProvider services, NodeSettings settings, TimeProvider clock, ILogger<FleetGauges> log) : BackgroundService
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Orchestrator.Fleet";

    private static readonly Meter Meter = new(MeterName);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    // One set of gauges per process (the meter is static); they read whichever node refreshed last, as the throttle gauge does.
    private static volatile Snapshot? _current;

    private sealed record Snapshot(IReadOnlyDictionary<DeviceStatus, int> ByStatus, int? Stale, IReadOnlyList<RolloutView> Rollouts);

    private static readonly ObservableGauge<int> Devices = Meter.CreateObservableGauge("orch_devices",
        () => _current?.ByStatus.Select(kv => new Measurement<int>(kv.Value, new KeyValuePair<string, object?>("status", kv.Key.ToString())))
              ?? [], description: "Devices per status (device registry read model)");

    private static readonly ObservableGauge<int> StaleDevices = Meter.CreateObservableGauge("orch_devices_stale",
        () => _current?.Stale is { } n ? [new Measurement<int>(n)] : Array.Empty<Measurement<int>>(),
        description: "Devices not heard from within their expected check-in interval (2 x Gateway:NextCheckInSeconds + Devices:LastSeenPersistInterval)");

    private static readonly ObservableGauge<int> RolloutDevices = Meter.CreateObservableGauge("orch_rollout_devices",
        () => (_current?.Rollouts ?? []).SelectMany(v => new (string State, int Count)[]
        {
            ("pending", v.Waves.Sum(w => w.Pending)), ("in_progress", v.Waves.Sum(w => w.InProgress)), ("succeeded", v.Waves.Sum(w => w.Succeeded)),
            ("failed", v.Waves.Sum(w => w.Failed)), ("failing", v.Waves.Sum(w => w.Failing)),
        }.Select(c => new Measurement<int>(c.Count, new KeyValuePair<string, object?>("rollout", v.Spec.RolloutId), new KeyValuePair<string, object?>("state", c.State)))),
        description: "Devices of each unfinished rollout by state (failing: still retrying past failingAfterAttempts)");

    private static readonly ObservableGauge<int> RolloutWave = Meter.CreateObservableGauge("orch_rollout_current_wave",
        () => (_current?.Rollouts ?? []).Select(v => new Measurement<int>(v.CurrentWave,
            new KeyValuePair<string, object?>("rollout", v.Spec.RolloutId), new KeyValuePair<string, object?>("status", v.Status.ToString()))),
        description: "Current wave (1-based) of each unfinished rollout, labelled with its status");

    /// <summary>How old a device's last-seen may be before it counts as stale.</summary>
    public TimeSpan StaleAfter => TimeSpan.FromSeconds(2 * settings.Gateway.NextCheckInSeconds) + settings.Devices.LastSeenPersistInterval;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromSeconds(settings.Gateway.FleetGaugeRefreshSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                _current = await ReadAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is AskTimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                log.LogWarning("Fleet gauges not refreshed: {Reason}", e.Message);
            }
            try { await Task.Delay(period, clock, stoppingToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    private async Task<Snapshot> ReadAsync(CancellationToken ct)
    {
        var byStatus = new Dictionary<DeviceStatus, int>();
        int? stale = null;
        if (services.GetService<IRequiredActor<DeviceRegistryActor>>() is { } registryActor)
        {
            var registry = await registryActor.GetAsync(ct).ConfigureAwait(false);
            var counts = await registry.Ask<DeviceCounts>(new CountDevices(clock.GetUtcNow() - StaleAfter), AskTimeout, ct).ConfigureAwait(false);
            foreach (var (status, n) in counts.ByStatus) byStatus[status] = n;
            stale = counts.Silent;
        }
        var rollouts = new List<RolloutView>();
        if (services.GetService<IRequiredActor<RolloutCoordinatorProxy>>() is { } proxy)
        {
            var coordinator = await proxy.GetAsync(ct).ConfigureAwait(false);
            var list = await coordinator.Ask<RolloutList>(new ListRollouts(false), AskTimeout, ct).ConfigureAwait(false);
            foreach (var r in list.Rollouts)
                if (await coordinator.Ask<object>(new GetRollout(r.RolloutId), AskTimeout, ct).ConfigureAwait(false) is RolloutView view) rollouts.Add(view);
        }
        return new Snapshot(byStatus, stale, rollouts);
    }
}
