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
        if (args.Any(a => a is "--help" or "-h") || (args.Length > 0 && args[0] == "help"))
        {
            stdout.WriteLine(Usage);
            return ExitCodes.Ok;
        }
        var list = args.ToList();
        var command = list.Count > 0 && !list[0].StartsWith('-') ? list[0] : "run";
        if (list.Count > 0 && !list[0].StartsWith('-')) list.RemoveAt(0);
        if (command == "sign-request") return SignRequestCommand.Run(list, stdout, stderr);
        // The launcher and the updater are on the path to the first check-in: their crypto libraries load while the
        // configuration is read (the updater verifies its trust root before checking in; the launcher verifies no signature).
        if (command is "run" or "update") Launching.CryptoWarmUp.Start(signatures: command == "update");
        void Log(string m) { lock (stdout) stdout.WriteLine($"{DateTimeOffset.UtcNow:HH:mm:ss.fff} orch-agent: {m}"); }
        try
        {
            var options = ParseOptions(list, command);
            var config = AgentConfig.Load(options.GetValueOrDefault("--config") ?? Path.Combine(AppContext.BaseDirectory, "agent.json"));
            var layout = new ZoneLayout(config.Zones);
            switch (command)
            {
                case "run":
                    using (var cts = new CancellationTokenSource())
                    {
                        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
                        return await new Launcher(config, Log, CrashPoints.FromEnvironment()).RunAsync(!options.ContainsKey("--no-client"), cts.Token);
                    }
                case "update":
                    if (options.ContainsKey("--self-test")) return UpdaterSelfTest.Run(config, layout, Log);
                    using (var cts = new CancellationTokenSource())
                    {
                        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
                        return await new Launcher(config, Log, CrashPoints.FromEnvironment()).RunUpdaterAsync(cts.Token);
                    }
                case "recover":
                    if (!options.ContainsKey("--from-virtual"))
                        throw new ArgumentException("recover needs --from-virtual (the only recovery source the agent has)");
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
                        var credential = ReadRequiredFile(options, "--credential-file");
                        var contentKey = ReadRequiredFile(options, "--content-key-file");
                        var trustRoot = File.ReadAllBytes(options.GetValueOrDefault("--trust-root-file") ?? layout.VirtualTrustRoot);
                        using var key = DeviceKey.Derive(config.MachineSecretFile, config.DeviceId);
                        new ZoneProvisioner(layout, new HiddenZone(layout, key)).Provision(credential, contentKey, trustRoot);
                        if (options.ContainsKey("--updater-credential-file"))
                        {
                            if (config.UpdaterDeviceId is null)
                                throw new ArgumentException($"--updater-credential-file needs updaterDeviceId and updaterProduct in '{config.SourcePath}'");
                            var trackLayout = new ZoneLayout(layout.UpdaterReleaseZones);
                            using var trackKey = DeviceKey.Derive(config.MachineSecretFile, config.UpdaterDeviceId);
                            var trackContentKey = options.ContainsKey("--updater-content-key-file") ? ReadRequiredFile(options, "--updater-content-key-file") : contentKey;
                            ZoneProvisioner.ProvisionReleaseTrack(new HiddenZone(trackLayout, trackKey), ReadRequiredFile(options, "--updater-credential-file"), trackContentKey, trustRoot);
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
                    throw new ArgumentException($"unknown command '{command}'");
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

    private static readonly Dictionary<string, HashSet<string>> Known = new()
    {
        ["run"] = ["--config", "--no-client"],
        ["update"] = ["--config", "--self-test"],
        ["recover"] = ["--config", "--from-virtual"],
        ["provision"] = ["--config", "--credential-file", "--content-key-file", "--trust-root-file", "--updater-credential-file", "--updater-content-key-file"],
        ["status"] = ["--config"],
    };

    private static readonly HashSet<string> Flags = ["--no-client", "--from-virtual", "--self-test"];

    private static Dictionary<string, string> ParseOptions(List<string> args, string command)
    {
        if (!Known.TryGetValue(command, out var known))
            throw new ArgumentException($"unknown command '{command}'");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (!known.Contains(a)) throw new ArgumentException($"'{a}' is not an option of '{command}'");
            if (Flags.Contains(a)) { result[a] = ""; continue; }
            if (i + 1 >= args.Count) throw new ArgumentException($"{a} needs a value");
            result[a] = args[++i];
        }
        return result;
    }

    private static byte[] ReadRequiredFile(Dictionary<string, string> options, string name)
    {
        if (!options.TryGetValue(name, out var path)) throw new ArgumentException($"provision needs {name}");
        return File.ReadAllBytes(path);
    }
}
