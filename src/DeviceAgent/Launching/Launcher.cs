using System.Diagnostics;
using System.Text;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Launching;

/// <summary>Process exit codes of <c>orch-agent</c>.</summary>
public static class ExitCodes
{
    /// <summary>Session done (and the client started, if configured).</summary>
    public const int Ok = 0;
    /// <summary>The session gave up after the configured number of attempts.</summary>
    public const int SessionFailed = 1;
    /// <summary>Bad command line or configuration.</summary>
    public const int BadInput = 2;
    /// <summary>No source gave a verified updater (the virtual copy is missing or damaged too); the client was started anyway.</summary>
    public const int ZonesDamaged = 3;
    /// <summary>The updater program could not be started or ended abnormally (killed, crashed); the client was started anyway.</summary>
    public const int UpdaterFailed = 4;
    /// <summary>Stopped by Ctrl-C / SIGINT.</summary>
    public const int Interrupted = 130;
}

/// <summary>
/// The launcher of the seed method: (1) verify the free-zone updater and the hidden backup and repair them from the
/// hidden backup, else the virtual zone's plain copy (<see cref="SelfRepair"/>), (2) start the free-zone updater as
/// its own process to run the update session (<see cref="AgentConfig.UpdaterCommand"/>; without one the session runs
/// here), (3) start the client program, also when the updater could not be repaired or failed.
/// </summary>
public sealed class Launcher(AgentConfig config, Action<string> log, CrashPoints? crash = null)
{
    /// <summary>Creates the gateway client; replaceable so tests can point the agent at a fake.</summary>
    public Func<HttpClient, string, IGatewayClient>? GatewayFactory { get; init; }

    /// <summary>Runs the three steps; returns an <see cref="ExitCodes"/> value.</summary>
    /// <param name="startClient">Start the client program after the session.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<int> RunAsync(bool startClient, CancellationToken ct)
    {
        var layout = new ZoneLayout(config.Zones);
        SelfRepairResult repair;
        using (var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId))
        {
            var hidden = new HiddenZone(layout, key);
            repair = new SelfRepair(layout, hidden, StatIndex.Open(layout.UpdaterStatIndex, hidden, "updater")).Run(config.SourcePath);
        }
        foreach (var w in repair.Warnings) log("warning: " + w);
        log(repair.Message);

        if (repair.Outcome == SelfRepairOutcome.Unrecoverable)
        {
            // The client program is intact and independent of the updater: a device without a working updater still runs it.
            log("WARNING: no working updater on this device: the update session is skipped until the updater is repaired" +
                (startClient && config.ClientCommand is not null ? "; starting the installed client program anyway" : ""));
            // The client first: an unreachable node must not delay it.
            if (startClient) StartClient(layout);
            await ReportUpdaterLostAsync(layout, repair, ct);
            return ExitCodes.ZonesDamaged;
        }
        var code = config.UpdaterCommand is null ? await RunSessionAsync(ct) : await RunUpdaterAsync(layout, repair.Version ?? "?", ct);
        if (code == ExitCodes.SessionFailed && !startClient) return code;
        if (startClient)
        {
            if (code == ExitCodes.SessionFailed) log("starting the installed client anyway");
            StartClient(layout);
        }
        return code;
    }

    /// <summary>Starts the verified free-zone updater with this configuration and waits for it.</summary>
    private async Task<int> RunUpdaterAsync(ZoneLayout layout, string version, CancellationToken ct)
    {
        var exe = Path.Combine(layout.FreeUpdater, config.UpdaterCommand!);
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = layout.FreeUpdater, UseShellExecute = false };
        psi.ArgumentList.Add("update");
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(config.SourcePath ?? throw new InvalidOperationException("configuration without a source path"));
        Process? p;
        try
        {
            p = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log($"WARNING: the updater '{exe}' (version {version}) could not be started: {e.Message}");
            return ExitCodes.UpdaterFailed;
        }
        if (p is null)
        {
            log($"WARNING: the updater '{exe}' (version {version}) could not be started");
            return ExitCodes.UpdaterFailed;
        }
        using (p)
        {
            log($"started the updater '{config.UpdaterCommand}' (version {version}, pid {p.Id})");
            await p.WaitForExitAsync(ct);
            var exit = p.ExitCode;
            if (exit is ExitCodes.Ok or ExitCodes.SessionFailed or ExitCodes.Interrupted) return exit;
            log($"WARNING: the updater (version {version}) ended with exit code {exit}; an unfinished install is completed or undone by its next run");
            return ExitCodes.UpdaterFailed;
        }
    }

    /// <summary>The update session until it succeeds (or gives up): the updater's work, run by <c>orch-agent update</c>.</summary>
    /// <returns><see cref="ExitCodes.Ok"/> or <see cref="ExitCodes.SessionFailed"/>.</returns>
    public async Task<int> RunSessionAsync(CancellationToken ct)
    {
        var layout = new ZoneLayout(config.Zones);
        if (config.Gateway is null)
        {
            log($"no gateway configured in '{config.SourcePath}': nothing to check in with; skipping the update session");
            return ExitCodes.Ok;
        }
        // A started agent writes a new sequence ceiling before its first request; from here it overlaps the setup.
        var sequence = new RequestSequence(layout.RequestSequenceCeiling);
        sequence.ReserveInBackground();
        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
        var hidden = new HiddenZone(layout, key);
        using var http = StoreDownloader.CreateHttpClient();
        var gateway = Gateway(http, layout, hidden, sequence);
        var session = new UpdateSession(config, layout, hidden, gateway, http, crash, log)
        {
            CheckInstalledTree = new ClientHealthCheck(log, crash).CheckAsync,
        };
        try
        {
            var result = await session.RunUntilSuccessAsync(ct);
            log(result.Action == Messages.Protocol.UpdateAction.None
                ? $"up to date at version ID {result.Installed.VersionId}"
                : $"{result.Action.ToString().ToLowerInvariant()} done: version {result.Installed.Version} (id {result.Installed.VersionId}); " +
                  $"{result.ChunksDownloaded} chunk(s) downloaded, {result.ChunksReused} reused, {result.Attempts} attempt(s)");
            return ExitCodes.Ok;
        }
        catch (SessionFailedException e)
        {
            log($"update session gave up after {config.Download.MaxSessionAttempts} attempt(s): {e.Message}");
            return ExitCodes.SessionFailed;
        }
    }

    /// <summary>The device API client of this device (its sealed credential, its persisted request sequence).</summary>
    private IGatewayClient Gateway(HttpClient http, ZoneLayout layout, HiddenZone hidden, RequestSequence sequence)
    {
        var credential = Encoding.UTF8.GetString(hidden.ReadRequired(HiddenItem.DeviceCredential));
        return GatewayFactory?.Invoke(http, credential)
               ?? new HttpGatewayClient(http, config.Gateway!, config.DeviceId, credential, TimeSpan.FromSeconds(config.Download.RequestTimeoutSeconds),
                   sequence);
    }

    /// <summary>
    /// Tells the node this device has no working updater, once, best effort: the device cannot update or repair
    /// itself until an operator acts, and without the report the node would only see it fall silent. Its next
    /// check-in (made only by a verified updater) clears the report.
    /// </summary>
    private async Task ReportUpdaterLostAsync(ZoneLayout layout, SelfRepairResult repair, CancellationToken ct)
    {
        if (config.Gateway is null) return;
        try
        {
            using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
            using var http = StoreDownloader.CreateHttpClient();
            var reason = BoundedProcess.Clip(repair.Message, 1900);
            await Gateway(http, layout, new HiddenZone(layout, key), new RequestSequence(layout.RequestSequenceCeiling)).ReportUpdaterLostAsync(new Messages.Protocol.UpdaterLostReport(reason), ct);
            log("reported to the node that this device has no working updater");
        }
        catch (Exception e) when (e is GatewayException or HttpRequestException or HiddenZoneException or IOException)
        {
            log($"could not report the missing updater to the node: {e.Message}");
        }
    }

    /// <summary><c>orch-agent update</c>: the client's session, then the updater's own release track (when configured).</summary>
    public async Task<int> RunUpdaterAsync(CancellationToken ct)
    {
        var code = await RunSessionAsync(ct);
        if (config.UpdaterDeviceId is not null) await new UpdaterReleaseTrack(config, log, crash).RunAsync(ct);
        return code;
    }

    private void StartClient(ZoneLayout layout)
    {
        if (config.ClientCommand is null) return;
        // A swap interrupted while the new version's health check ran leaves that unchecked version at the installed
        // path until recovery puts the previous one back; the updater's session recovers first, but the client must
        // not depend on an updater having run.
        try
        {
            using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
            var recovery = new TreeInstaller(layout, new HiddenZone(layout, key)).Recover();
            if (recovery != RecoveryOutcome.Clean) log($"interrupted install found before starting the client: {recovery}");
        }
        catch (Exception e) when (e is HiddenZoneException or IOException or InvalidOperationException)
        {
            log($"WARNING: an interrupted install could not be finished before starting the client: {e.Message}");
        }
        var exe = Path.Combine(layout.Client, config.ClientCommand);
        if (!File.Exists(exe))
        {
            log($"client program '{exe}' does not exist in the installed tree; not started");
            return;
        }
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = layout.Client, UseShellExecute = false };
        foreach (var a in config.ClientArguments) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi);
            log($"started client program '{config.ClientCommand}' (pid {p?.Id})");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log($"client program '{exe}' could not be started: {e.Message} (is it executable in the release? its mode comes from the manifest)");
        }
    }
}
