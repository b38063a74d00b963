using System.Diagnostics;
using System.Text;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Download;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Launching;

/// <summary>
/// The updater as a product of its own (<see cref="AgentConfig.UpdaterProduct"/>, rolled out to
/// <see cref="AgentConfig.UpdaterDeviceId"/> with the same releases, channels, rollouts and waves as any product). The
/// updater process runs a normal update session for it into its own zones (<see cref="ZoneLayout.UpdaterReleaseZones"/>):
/// signature, hashes and modes are verified like any release, and the staged tree must pass the new updater's
/// self-test (<c>update --self-test</c>) before it is committed, so a failing updater is reported and counted by the
/// rollout and never installed. A committed release is then promoted: self-tested again, sealed as the hidden backup
/// with its version at the next generation, and copied over the free-zone updater. Every step is idempotent and
/// checked from the start on the next run, so a kill at any point leaves either the previous updater or the new one
/// recorded, and the launcher repairs the free copy from whichever the sealed record names.
/// </summary>
public sealed class UpdaterReleaseTrack(AgentConfig config, Action<string> log, CrashPoints? crash = null)
{
    private readonly CrashPoints _crash = crash ?? CrashPoints.None;

    /// <summary>Most time a candidate updater's self-test may take.</summary>
    public static readonly TimeSpan SelfTestTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The configuration of the track: the updater identity and product in the track's zones, no client.</summary>
    public AgentConfig TrackConfig(ZoneLayout layout) => config with
    {
        DeviceId = config.UpdaterDeviceId!,
        Product = config.UpdaterProduct!,
        Zones = layout.UpdaterReleaseZones,
        ClientCommand = null,
        ClientArguments = [],
        UpdaterCommand = null,
        UpdaterDeviceId = null,
        UpdaterProduct = null,
        // A refused updater must not hold the client's start hostage: a few attempts per run, the next run tries again.
        Download = config.Download with { MaxSessionAttempts = config.Download.MaxSessionAttempts is > 0 and < 3 ? config.Download.MaxSessionAttempts : 3 },
    };

    /// <summary>Runs the track's session and promotes a newer committed release; returns an <see cref="ExitCodes"/> value.</summary>
    public async Task<int> RunAsync(CancellationToken ct)
    {
        var layout = new ZoneLayout(config.Zones);
        var track = TrackConfig(layout);
        var trackLayout = new ZoneLayout(track.Zones);
        using var trackKey = DeviceKey.Derive(track.MachineSecretFile, track.DeviceId);
        var trackHidden = new HiddenZone(trackLayout, trackKey);
        if (trackHidden.Read(HiddenItem.DeviceCredential).State != HiddenItemState.Ok)
        {
            log($"updater release track '{track.DeviceId}' ({track.Product}) is not provisioned (`orch-agent provision ... --updater-credential-file F`): " +
                "the updater changes only with the device image");
            return ExitCodes.Ok;
        }
        if (track.Gateway is null) return ExitCodes.Ok;
        using var http = StoreDownloader.CreateHttpClient();
        var credential = Encoding.UTF8.GetString(trackHidden.ReadRequired(HiddenItem.DeviceCredential));
        var gateway = new HttpGatewayClient(http, track.Gateway, track.DeviceId, credential, TimeSpan.FromSeconds(track.Download.RequestTimeoutSeconds),
            new RequestSequence(trackLayout.RequestSequenceCeiling));
        var session = new UpdateSession(track, trackLayout, trackHidden, gateway, http, _crash, m => log("updater release: " + m))
        {
            AcceptStagedTree = async (tree, token) =>
            {
                var refused = await SelfTestAsync(tree, token);
                if (refused is null) _crash.Reached(CrashPoints.UpdaterStagedSelfTested);
                return refused;
            },
        };
        var code = ExitCodes.Ok;
        try
        {
            var result = await session.RunUntilSuccessAsync(ct);
            log(result.Action == Messages.Protocol.UpdateAction.None
                ? $"updater release: up to date at version ID {result.Installed.VersionId}"
                : $"updater release: {result.Action.ToString().ToLowerInvariant()} done: version {result.Installed.Version} (id {result.Installed.VersionId})");
        }
        catch (SessionFailedException e)
        {
            log($"WARNING: updater release session gave up after {track.Download.MaxSessionAttempts} attempt(s), the previous updater is kept: {e.Message}");
            code = ExitCodes.SessionFailed;
        }
        await PromoteAsync(layout, trackLayout, trackHidden, ct);
        return code;
    }

    /// <summary>Makes the committed updater release the working updater, unless it already is or fails its self-test.</summary>
    private async Task PromoteAsync(ZoneLayout layout, ZoneLayout trackLayout, HiddenZone trackHidden, CancellationToken ct)
    {
        var installed = trackHidden.ReadVersionRecord();
        if (installed is null || installed.VersionId == 0) return;
        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
        var hidden = new HiddenZone(layout, key);
        var seal = UpdaterSeal.Read(hidden);
        if (seal is null || seal.Legacy)
        {
            log("updater release: the sealed updater record is unusable; the launcher rebuilds it on its next start, then the release is switched in");
            return;
        }
        var candidate = UpdaterTree.DigestOf(trackLayout.Client);
        if (candidate == seal.TreeDigest && seal.Version == installed.Version) return; // already the working updater (the launcher keeps the free copy equal to it)
        if (!UpdaterSeal.IsValidVersion(installed.Version))
        {
            log($"WARNING: updater release version '{installed.Version}' cannot be recorded (spaces or over 64 characters); the previous updater is kept");
            return;
        }
        if (await SelfTestAsync(trackLayout.Client, ct) is { } refused)
        {
            log($"WARNING: updater {installed.Version} failed its self-test; the previous updater ({seal.Version}) is kept: {refused}");
            return;
        }
        _crash.Reached(CrashPoints.UpdaterSelfTested);
        var bundle = UpdaterBundle.FromFolder(trackLayout.Client);
        var sealedNow = SelfRepair.Seal(layout, hidden, bundle, installed.Version, seal.ImageDigest, _crash);
        _crash.Reached(CrashPoints.UpdaterRecordSealed);
        var changed = bundle.RestoreTo(layout.FreeUpdater, _crash);
        _crash.Reached(CrashPoints.UpdaterSwapped);
        log($"updater {installed.Version} (id {installed.VersionId}) passed its self-test and is now the free-zone updater and the hidden backup " +
            $"(generation {sealedNow.Generation}, {changed.Count} file(s) changed); the launcher starts it from the next run");
    }

    /// <summary>Starts the updater program of <paramref name="tree"/> with <c>update --self-test</c>; null when it passed, else why not.</summary>
    private async Task<string?> SelfTestAsync(string tree, CancellationToken ct)
    {
        var exe = Path.Combine(tree, config.UpdaterCommand!);
        if (!File.Exists(exe)) return $"the release has no updater program '{config.UpdaterCommand}'";
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = tree };
        foreach (var a in new[] { "update", "--self-test", "--config", config.SourcePath! }) psi.ArgumentList.Add(a);
        psi.Environment.Remove(CrashPoints.EnvironmentVariable);
        BoundedProcess.Outcome run;
        try
        {
            run = await BoundedProcess.RunAsync(psi, SelfTestTimeout, ct);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"self-test could not start '{config.UpdaterCommand}': {e.Message} (is it executable in the release? its mode comes from the manifest)";
        }
        if (run.ExitCode is not { } code) return $"self-test did not finish within {SelfTestTimeout.TotalSeconds:0} s";
        if (code == ExitCodes.Ok && run.Output.Contains(UpdaterSelfTest.PassedLine, StringComparison.Ordinal)) return null;
        return $"self-test exited with code {code}: {BoundedProcess.Clip(run.Output, 400)}";
    }
}
