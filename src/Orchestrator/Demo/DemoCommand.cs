using Orchestrator.CommandLine;

namespace Orchestrator.Node.Demo;

/// <summary>
/// <c>orchestrator demo</c>: the newcomer's first run. Starts a node, publishes two versions of a sample program
/// with the real Publisher, provisions simulated devices through the admin API, installs 1.0.0, damages some
/// devices so the node orders repairs, rolls out 1.1.0 in waves, rolls out a new updater to one device and repairs its
/// updater from each source, and keeps the node and the fleet running (with the dashboard) until Ctrl+C.
/// </summary>
public static class DemoCommand
{
    private const string Usage = """
        usage: orchestrator demo [--dir DIR] [--port 5080] [--devices 20] [--damage 3] [--interval 3]
          --dir      folder for the node's data, keys, releases and device zones (default ./orch-demo; a previous
                     demo folder there is replaced)
          --port     HTTP port of the node on 127.0.0.1 (dashboard, device and admin API)
          --devices  simulated devices, 2..10000 (each with its own three zones on disk)
          --damage   devices whose installed files are damaged after the first install (they get repaired)
          --interval seconds between a device's check-ins (± 50 % jitter)
        """;

    private const string Marker = ".orchestrator-demo";

    private static readonly CommandGrammar Grammar = new("orchestrator demo",
    [
        SwitchSpec.Value("dir", "DIR"), SwitchSpec.Value("port", "PORT"), SwitchSpec.Value("devices", "N"),
        SwitchSpec.Value("damage", "N"), SwitchSpec.Value("interval", "SECONDS"),
    ]);

    /// <summary>Runs the demo; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        string dir;
        int port, devices, damage;
        double interval;
        try
        {
            var o = Grammar.Parse(args);
            dir = Path.GetFullPath(o.Optional("dir") ?? "orch-demo");
            port = o.Int("port", 5080, 1, 65535);
            devices = o.Int("devices", 20, 2, int.MaxValue);
            if (devices > DemoRollouts.MaxDevices)
                throw new ArgumentException($"--devices {devices} is more than the demo's {DemoRollouts.MaxDevices} (its rollouts name every device); " +
                                            "for larger fleets use `orch-simulate` against a node, or bench/fleet/run.sh");
            damage = o.Int("damage", 3, 0, devices);
            interval = o.Double("interval", 3, 0, exclusiveMin: true);
            PrepareFolder(dir);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException)
        {
            Console.Error.WriteLine($"orchestrator demo: {e.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }

        // The node's own logs (Akka, ASP.NET) go to a file so the terminal shows only the demo's steps.
        var terminal = Console.Out;
        Directory.CreateDirectory(Path.Combine(dir, "node"));
        var nodeLog = Path.Combine(dir, "node", "node.log");
        await using var logWriter = new StreamWriter(nodeLog, append: true) { AutoFlush = true };
        Console.SetOut(TextWriter.Synchronized(logWriter));
        try
        {
            return await new DemoRun(dir, port, devices, damage, interval, terminal, nodeLog).RunAsync();
        }
        finally
        {
            Console.SetOut(terminal);
        }
    }

    private static void PrepareFolder(string dir)
    {
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
        {
            if (!File.Exists(Path.Combine(dir, Marker)))
                throw new ArgumentException($"'{dir}' exists and is not a demo folder; the demo only replaces folders it created. Pass another --dir");
            Directory.Delete(dir, recursive: true);
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, Marker), "created by `orchestrator demo`; the next demo run replaces this folder\n");
    }
}
