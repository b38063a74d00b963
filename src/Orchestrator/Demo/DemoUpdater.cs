using System.Text;
using Orchestrator.ChunkStore.Publishing;
using Orchestrator.DeviceAgent.Launching;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.Node.Demo;

/// <summary>
/// The demo's updater step: the updater is a product of its own (<see cref="Product"/>), rolled out to one device's
/// updater identity, installed by that device's release track (<see cref="UpdaterReleaseTrack"/>: verified, self-tested
/// by running the staged updater, then sealed as the hidden backup and copied over the free-zone updater), and then
/// repaired by the launcher's first step (<see cref="SelfRepair"/>) from each source in seed order.
/// </summary>
internal static class DemoUpdater
{
    public const string Product = "orch-updater";
    public const string Version = "2.0.0";

    /// <summary>
    /// Writes the updater release: a program that says which release it is and runs the real <c>orch-agent</c> next to
    /// the node (so its self-test really opens the device's configuration and hidden zone).
    /// </summary>
    public static void Write(string folder)
    {
        var apphost = Path.Combine(AppContext.BaseDirectory, "orch-agent");
        var run = File.Exists(apphost) ? $"exec '{apphost}' \"$@\"" : $"exec dotnet '{Path.Combine(AppContext.BaseDirectory, "orch-agent.dll")}' \"$@\"";
        var exe = Path.Combine(folder, "orch-agent");
        Directory.CreateDirectory(folder);
        File.WriteAllText(exe, $"#!/bin/sh\necho \"demo updater {Version}: $*\"\n{run}\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(exe, (UnixFileMode)0b111_101_101);
        File.WriteAllText(Path.Combine(folder, "RELEASE"), $"{Product} {Version}: the updater release of `orchestrator demo`\n");
    }

    /// <summary>Runs the step on <paramref name="device"/>; <paramref name="info"/> prints a line.</summary>
    public static async Task RunAsync(SimulatedDevice device, Publisher publisher, string releasesDir, AdminCredentialSource credentials, DemoRollouts rollouts,
        byte[] contentKey, byte[] trustRoot, Action<string> info, CancellationToken ct)
    {
        var tree = Path.Combine(releasesDir, $"{Product}-{Version}");
        Write(tree);
        var release = publisher.Publish(new PublishRequest(Product, Version, tree));
        info($"published {Product} {Version} (version ID {release.VersionId}, {release.Files} files) like any product");

        // The device's updater gets its own identity and release track, as `orch-agent provision --updater-credential-file` does.
        var trackId = device.DeviceId + ".updater";
        var config = device.Config with { UpdaterCommand = "orch-agent", UpdaterDeviceId = trackId, UpdaterProduct = Product };
        File.WriteAllText(config.SourcePath!, config.ToJson());
        var layout = device.Layout;
        using (var trackKey = DeviceKey.Derive(config.MachineSecretFile, trackId))
        {
            var secret = await credentials.ProvisionAsync(trackId, ct);
            ZoneProvisioner.ProvisionReleaseTrack(new HiddenZone(new ZoneLayout(layout.UpdaterReleaseZones), trackKey), Encoding.UTF8.GetBytes(secret), contentKey, trustRoot);
        }
        info($"{trackId}: the updater's own identity, provisioned on {device.DeviceId}; its updater is version '{UpdaterSeal.Read(device.Hidden)?.Version}', from the device image");

        await rollouts.StartAsync("demo-updater", Product, Version, [trackId], [100], ct);
        await rollouts.WaitAssignedAsync(trackId, "demo-updater", ct);
        var track = new UpdaterReleaseTrack(config, m => info(m));
        await track.RunAsync(ct);
        var until = DateTime.UtcNow.AddSeconds(60);
        var view = await rollouts.GetAsync("demo-updater", ct);
        while (!DemoRollouts.HasStopped(view) && DateTime.UtcNow < until)
        {
            await Task.Delay(500, ct);
            view = await rollouts.GetAsync("demo-updater", ct);
        }
        info(DemoRollouts.Describe(view));

        // The launcher's first step on every start, after damage to each copy in turn.
        var repair = new SelfRepair(layout, device.Hidden);
        File.WriteAllText(Path.Combine(layout.FreeUpdater, "orch-agent"), "#!/bin/sh\necho tampered\n");
        info($"damaged {Path.Combine(layout.FreeUpdater, "orch-agent")}; the launcher: {repair.Run(config.SourcePath).Message}");
        File.Delete(Path.Combine(layout.FreeUpdater, "RELEASE"));
        File.WriteAllBytes(layout.Hidden(HiddenItem.UpdaterBackup), [0, 1, 2]);
        info($"damaged the free copy and the hidden backup too; the launcher: {repair.Run(config.SourcePath).Message}");
        // The image's updater is older than the release the device was given: the release track makes 2.0.0 the updater again.
        await track.RunAsync(ct);
        info($"{device.DeviceId}: {repair.Run(config.SourcePath).Message}");
    }
}
