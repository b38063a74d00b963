using System.Security.Cryptography;
using System.Text.Json;
using Orchestrator.Cli;
using Orchestrator.Cli.CommandLine;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Orchestrator.Cli.Tests;

/// <summary>Runs <c>orch</c> in-process against real temp folders and captures its output.</summary>
public sealed class CliHarness : IDisposable
{
    public CliHarness()
    {
        Root = Path.Combine(Path.GetTempPath(), "orch-cli-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }
    public string Store => Path.Combine(Root, "store");
    public string Keys => Path.Combine(Root, "keys");

    public sealed record Run(int ExitCode, string Out, string Error)
    {
        public JsonElement Json => JsonDocument.Parse(Out).RootElement;
    }

    /// <summary>Environment the commands see (ORCH_SERVER, ORCH_TOKEN); the process environment is never read.</summary>
    public Dictionary<string, string> Environment { get; } = new();

    public async Task<Run> Orch(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await OrchCli.RunAsync(args, new CliConsole(output, error, IsTerminal: false, Environment: n => Environment.GetValueOrDefault(n)));
        return new Run(code, output.ToString(), error.ToString());
    }

    /// <summary>A command running in the background (e.g. a watch); output can be read while it runs.</summary>
    public sealed record Background(Task<int> Exit, StringWriter Out, TextWriter SyncOut, StringWriter Error)
    {
        // TextWriter.Synchronized locks on the wrapper instance; reading under the same lock sees whole lines.
        public string OutText { get { lock (SyncOut) return Out.ToString(); } }
    }

    /// <summary>Starts orch without waiting; <paramref name="cancellationToken"/> plays the part of Ctrl+C.</summary>
    public Background Start(CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var syncOut = TextWriter.Synchronized(output);
        var console = new CliConsole(syncOut, TextWriter.Synchronized(error), IsTerminal: false, Environment: n => Environment.GetValueOrDefault(n));
        return new Background(Task.Run(() => OrchCli.RunAsync(args, console, cancellationToken)), output, syncOut, error);
    }

    /// <summary>Runs orch as if stdout were a terminal (tables with borders, progress bars, spinners).</summary>
    public async Task<Run> OrchOnTerminal(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await OrchCli.RunAsync(args, new CliConsole(output, error, IsTerminal: true, Environment: n => Environment.GetValueOrDefault(n)));
        return new Run(code, output.ToString(), error.ToString());
    }

    /// <summary>Runs orch with <paramref name="stdin"/> as piped input (interactive mode when no command is given).</summary>
    public async Task<Run> OrchWithInput(string stdin, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await OrchCli.RunAsync(args, new CliConsole(output, error, IsTerminal: false, new StringReader(stdin), n => Environment.GetValueOrDefault(n)));
        return new Run(code, output.ToString(), error.ToString());
    }

    /// <summary>A release tree with a binary of <paramref name="binary"/> bytes, a config and a symlink.</summary>
    public string Tree(string name, byte[] binary, string config = "a=1\n")
    {
        var root = Path.Combine(Root, name);
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        File.WriteAllBytes(Path.Combine(root, "bin", "app"), binary);
        File.WriteAllText(Path.Combine(root, "app.conf"), config);
        File.CreateSymbolicLink(Path.Combine(root, "bin", "current"), "app");
        return root;
    }

    public static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static IReadOnlyDictionary<string, string> Snapshot(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(root)) return result;
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            result[Path.GetRelativePath(root, file)] = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        return result;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
