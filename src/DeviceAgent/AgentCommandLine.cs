using Orchestrator.CommandLine;
using Orchestrator.DeviceAgent.Configuration;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Launching;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent;

/// <summary>Command-line entry: <c>run</c> (default), <c>recover --from-virtual</c>, <c>provision</c>, <c>status</c>, <c>sign-request</c>.</summary>
public static class AgentCommandLine
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        usage:
          orch-agent [run] [--config FILE] [--no-client]
              launcher: verify and repair the updater, start it (updaterCommand) to run the update session, start the client
          orch-agent update [--config FILE] [--self-test]
              the updater: run the update session until it succeeds (started by the launcher); --self-test only checks
              that this updater can open the configuration and the hidden zone (run before a new updater is switched in)
          orch-agent recover --from-virtual [--config FILE]
              rebuild the hidden-zone backup and the free-zone updater from the read-only virtual zone
          orch-agent provision --credential-file FILE --content-key-file FILE [--trust-root-file FILE] [--config FILE]
                               [--updater-credential-file FILE [--updater-content-key-file FILE]]
              first-time setup of the hidden and free zones (trust root defaults to <virtual>/trust-root.pub); with
              --updater-credential-file also the updater's own release track (updaterDeviceId, updaterProduct)
          orch-agent status [--config FILE]
              show the zones (hidden items; updater record, free copy, hidden backup, virtual copy), the installed
              version and any interrupted install; exit 3 when any zone item is damaged
        """ + "\n" + SignRequestCommand.Usage + "\n" + """
        --config defaults to agent.json next to the orch-agent executable (the virtual zone).
        """;

    /// <summary>Runs a command; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CommandGrammar.AsksForHelp(args) || (args.Length > 0 && args[0] == "help"))
        {
            stdout.WriteLine(Usage);
            return ExitCodes.Ok;
        }
        var named = args.Length > 0 && !args[0].StartsWith('-');
        var command = named ? args[0] : "run";
        var rest = args.AsSpan(named ? 1 : 0).ToArray();
        if (command == "sign-request") return SignRequestCommand.Run(rest, stdout, stderr);
        void Log(string m) { lock (stdout) stdout.WriteLine($"{DateTimeOffset.UtcNow:HH:mm:ss.fff} orch-agent: {m}"); }
        try
        {
            var options = (Grammars.GetValueOrDefault(command) ?? throw new UsageException($"unknown command '{command}'")).Parse(rest);
            var config = AgentConfig.Load(options.Optional("config") ?? Path.Combine(AppContext.BaseDirectory, "agent.json"));
            var layout = new ZoneLayout(config.Zones);
            switch (command)
            {
                case "run":
                    using (var cts = new CancellationTokenSource())
                    {
                        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
                        return await new Launcher(config, Log, CrashPoints.FromEnvironment()).RunAsync(!options.Has("no-client"), cts.Token);
                    }
                case "update":
                    if (options.Has("self-test")) return UpdaterSelfTest.Run(config, layout, Log);
                    using (var cts = new CancellationTokenSource())
                    {
                        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
                        return await new Launcher(config, Log, CrashPoints.FromEnvironment()).RunUpdaterAsync(cts.Token);
                    }
                case "recover":
                    if (!options.Has("from-virtual"))
                        throw new UsageException("recover needs --from-virtual (the only recovery source the agent has)");
                    using (var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId))
                    {
                        var report = new ZoneProvisioner(layout, new HiddenZone(layout, key)).RecoverFromVirtual();
                        foreach (var r in report.Rebuilt) Log("rebuilt " + r);
                        if (report.NeedsProvisioning.Count == 0) return ExitCodes.Ok;
                        stderr.WriteLine($"orch-agent: still damaged: {string.Join(", ", report.NeedsProvisioning)}; the virtual zone cannot supply device secrets: " +
                                         "re-provision with `orch-agent provision --credential-file F --content-key-file F`");
                        return ExitCodes.ZonesDamaged;
                    }
                case "provision":
                    {
                        var credential = File.ReadAllBytes(options.Required("credential-file"));
                        var contentKey = File.ReadAllBytes(options.Required("content-key-file"));
                        var trustRoot = File.ReadAllBytes(options.Optional("trust-root-file") ?? layout.VirtualTrustRoot);
                        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
                        new ZoneProvisioner(layout, new HiddenZone(layout, key)).Provision(credential, contentKey, trustRoot);
                        if (options.Optional("updater-credential-file") is { } updaterCredentialFile)
                        {
                            if (config.UpdaterDeviceId is null)
                                throw new ArgumentException($"--updater-credential-file needs updaterDeviceId and updaterProduct in '{config.SourcePath}'");
                            var trackLayout = new ZoneLayout(layout.UpdaterReleaseZones);
                            using var trackKey = DeviceKey.Derive(config.MachineSecretFile, config.UpdaterDeviceId);
                            var trackContentKey = options.Optional("updater-content-key-file") is { } trackKeyFile ? File.ReadAllBytes(trackKeyFile) : contentKey;
                            ZoneProvisioner.ProvisionReleaseTrack(new HiddenZone(trackLayout, trackKey), File.ReadAllBytes(updaterCredentialFile), trackContentKey, trustRoot);
                            Log($"provisioned the updater release track {config.UpdaterDeviceId} ({config.UpdaterProduct})");
                        }
                        Log($"provisioned device {config.DeviceId}: hidden zone '{config.Zones.Hidden}', updater copied to '{layout.FreeUpdater}'");
                        return ExitCodes.Ok;
                    }
                case "status":
                    {
                        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
                        var hidden = new HiddenZone(layout, key);
                        stdout.WriteLine($"device    {config.DeviceId} ({config.Product})");
                        var damaged = new List<string>();
                        foreach (var item in Enum.GetValues<HiddenItem>())
                        {
                            var state = hidden.Read(item).State;
                            if (state != HiddenItemState.Ok) damaged.Add($"hidden {HiddenZone.FileName(item)} ({state.ToString().ToLowerInvariant()})");
                            stdout.WriteLine($"hidden    {HiddenZone.FileName(item),-24} {state}");
                        }
                        var updater = new SelfRepair(layout, hidden).Inspect();
                        stdout.WriteLine($"updater   version {updater.Version ?? "unknown"} (generation {updater.Generation}): record {updater.Record}, " +
                                         $"free copy {updater.Free}, hidden backup {updater.Backup}, virtual copy {updater.Image}");
                        foreach (var (what, state) in new[] { ("updater record", updater.Record), ("free-zone updater", updater.Free),
                                     ("hidden updater backup", updater.Backup), ("virtual updater copy", updater.Image) })
                            if (state != "ok") damaged.Add($"{what} ({state})");
                        var v = hidden.ReadVersionRecord();
                        stdout.WriteLine($"installed {(v is null ? "unknown (record missing or damaged: the floor is unknown until a director-signed directive gives it)" : $"{v.Version} (id {v.VersionId}, record counter {v.Counter})")}");
                        Trust.AgentStatus.Write(stdout, config, layout, hidden);
                        stdout.WriteLine($"client    {TreeInventory.Files(layout.Client).Count()} file(s) in {layout.Client}");
                        stdout.WriteLine($"journal   {(File.Exists(layout.Journal) ? "present: an install was interrupted; the next run completes it" : "none")}");
                        if (damaged.Count == 0) return ExitCodes.Ok;
                        // A script or monitor must see damage without parsing the table.
                        stderr.WriteLine($"orch-agent: damaged: {string.Join(", ", damaged)}; `orch-agent run` repairs the updater copies from the next intact source, " +
                                         $"`{SelfRepair.RecoverCommand} --config {config.SourcePath}` rebuilds what the virtual zone can supply");
                        return ExitCodes.ZonesDamaged;
                    }
                default:
                    throw new UsageException($"unknown command '{command}'");
            }
        }
        catch (Exception e) when (e is ArgumentException or AgentConfigException or FileNotFoundException or DirectoryNotFoundException)
        {
            stderr.WriteLine($"orch-agent: {e.Message}");
            stderr.WriteLine(Usage);
            return ExitCodes.BadInput;
        }
        catch (HiddenZoneException e)
        {
            stderr.WriteLine($"orch-agent: {e.Message}");
            return ExitCodes.ZonesDamaged;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("orch-agent: interrupted; an unfinished install is completed or undone on the next start");
            return ExitCodes.Interrupted;
        }
    }

    private static readonly SwitchSpec Config = SwitchSpec.Value("config", "FILE");

    // The provisioning secrets are checked where they are read, so a missing one is named with the command's usage.
    private static readonly Dictionary<string, CommandGrammar> Grammars = new(StringComparer.Ordinal)
    {
        ["run"] = new("orch-agent run", [Config, SwitchSpec.Flag("no-client")]),
        ["update"] = new("orch-agent update", [Config, SwitchSpec.Flag("self-test")]),
        ["recover"] = new("orch-agent recover", [Config, SwitchSpec.Flag("from-virtual")]),
        ["provision"] = new("orch-agent provision",
        [
            Config, SwitchSpec.Value("credential-file", "FILE", required: true), SwitchSpec.Value("content-key-file", "FILE", required: true),
            SwitchSpec.Value("trust-root-file", "FILE"), SwitchSpec.Value("updater-credential-file", "FILE"), SwitchSpec.Value("updater-content-key-file", "FILE"),
        ]),
        ["status"] = new("orch-agent status", [Config]),
    };
}
