using System.Diagnostics;
using System.Text;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Session;
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
    /// <summary>Zones damaged beyond self-repair; the message names the recovery command.</summary>
    public const int ZonesDamaged = 3;
    /// <summary>Stopped by Ctrl-C / SIGINT.</summary>
    public const int Interrupted = 130;
}

/// <summary>
/// The launcher of the seed method: (1) check the updater working copy and restore it from the hidden backup if
/// needed (or say how to recover from the virtual zone), (2) run the update session until it succeeds, (3) start
/// the client program.
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
        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
        var hidden = new HiddenZone(layout, key);

        var repair = new SelfRepair(layout, hidden).Run(config.SourcePath);
        foreach (var w in repair.Warnings) log("warning: " + w);
        log(repair.Message);
        if (repair.Outcome == SelfRepairOutcome.Unrecoverable) return ExitCodes.ZonesDamaged;

        if (config.Gateway is null)
        {
            log($"no gateway configured in '{config.SourcePath}': nothing to check in with; skipping the update session");
        }
        else
        {
            using var http = StoreDownloader.CreateHttpClient();
            var credential = Encoding.UTF8.GetString(hidden.ReadRequired(HiddenItem.DeviceCredential));
            var gateway = GatewayFactory?.Invoke(http, credential)
                          ?? new HttpGatewayClient(http, config.Gateway, config.DeviceId, credential, TimeSpan.FromSeconds(config.Download.RequestTimeoutSeconds),
                              new RequestSequence(layout.RequestSequenceCeiling));
            var session = new UpdateSession(config, layout, hidden, gateway, http, crash, log);
            try
            {
                var result = await session.RunUntilSuccessAsync(ct);
                log(result.Action == Messages.Protocol.UpdateAction.None
                    ? $"up to date at version ID {result.Installed.VersionId}"
                    : $"{result.Action.ToString().ToLowerInvariant()} done: version {result.Installed.Version} (id {result.Installed.VersionId}); " +
                      $"{result.ChunksDownloaded} chunk(s) downloaded, {result.ChunksReused} reused, {result.Attempts} attempt(s)");
            }
            catch (SessionFailedException e)
            {
                log($"update session gave up after {config.Download.MaxSessionAttempts} attempt(s): {e.Message}");
                if (!startClient) return ExitCodes.SessionFailed;
                log("starting the installed client anyway");
                StartClient(layout);
                return ExitCodes.SessionFailed;
            }
        }
        if (startClient) StartClient(layout);
        return ExitCodes.Ok;
    }

    private void StartClient(ZoneLayout layout)
    {
        if (config.ClientCommand is null) return;
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
