using System.Reflection;
using Orchestrator.ChunkStore.Validation;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Interactive;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Palettes;
using Orchestrator.Cli.Server;

namespace Orchestrator.Cli;

/// <summary>
/// The <c>orch</c> entry point, callable in-process (tests pass their own writers). Maps failures to the
/// documented <see cref="ExitCodes"/>: the message goes to stderr, and with <c>--json</c> also a JSON error
/// object to stdout so scripts can parse every outcome.
/// </summary>
public static class OrchCli
{
    /// <summary>All palettes of this build.</summary>
    public static CommandRegistry CreateRegistry()
    {
        var registry = new CommandRegistry();
        KeysPalette.Register(registry);
        ReleasePalette.Register(registry);
        StorePalette.Register(registry);
        DeltaPalette.Register(registry);
        ClusterPalette.Register(registry);
        ShardingPalette.Register(registry);
        DevicePalette.Register(registry);
        GroupPalette.Register(registry);
        ChunksPalette.Register(registry);
        RolloutPalette.Register(registry);
        TokenPalette.Register(registry);
        ChannelPalette.Register(registry);
        AuditPalette.Register(registry);
        return registry;
    }

    /// <summary>This build's version (the assembly's informational version, e.g. <c>1.0.0+commit</c>).</summary>
    public static string Version { get; } =
        typeof(OrchCli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>Runs one command line; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, CliConsole console, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(console);
        var json = args.Contains("--json");
        if (args is ["--version"] or ["version"])
        {
            console.Out.WriteLine($"orch {Version}");
            return ExitCodes.Success;
        }
        try
        {
            var (globals, rest) = SplitLeadingGlobals(args);
            if (rest.Count == 0 && console.In is not null)
                return await InteractiveShell.RunAsync(globals, console, cancellationToken).ConfigureAwait(false);
            var parsed = CreateRegistry().Parse([.. rest, .. globals]);
            if (parsed.Help is not null)
            {
                console.Out.WriteLine(parsed.Help);
                return ExitCodes.Success;
            }
            var invocation = new CommandInvocation(parsed.Command!, parsed.Arguments!, console);
            return await parsed.Command!.Handler(invocation, cancellationToken).ConfigureAwait(false);
        }
        catch (AdminApiException ex) { return Fail(console, json, ex.ExitCode, ex.Error, ex.Message); }
        catch (UsageException ex) { return Fail(console, json, ExitCodes.Usage, "usage", ex.Message); }
        catch (InvalidInputException ex) { return Fail(console, json, ExitCodes.InvalidInput, "invalid_input", ex.Message); }
        catch (IntegrityException ex) { return Fail(console, json, ExitCodes.IntegrityProblem, "integrity", ex.Message); }
        catch (StoreBusyException ex) { return Fail(console, json, ExitCodes.Busy, "busy", ex.Message); }
        catch (OperationCanceledException) { return Fail(console, json, ExitCodes.Interrupted, "cancelled", "Interrupted."); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(console, json, ExitCodes.Failure, "io", $"{ex.Message} (check the path, free space and permissions, then retry)");
        }
    }

    /// <summary>
    /// Separates switches that may precede the palette (<c>orch --server URL --token T --json device list</c>) from the
    /// rest; the parser then sees them after the command like any other switch.
    /// </summary>
    private static (List<string> Globals, List<string> Remaining) SplitLeadingGlobals(string[] args)
    {
        var globals = new List<string>();
        var i = 0;
        while (i < args.Length)
        {
            var a = args[i];
            if (a == "--json") { globals.Add(a); i++; }
            else if (a is "--server" or "--token")
            {
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new UsageException($"Switch '{a}' needs a value ({(a == "--server" ? "URL" : "TOKEN")}).");
                globals.Add(a);
                globals.Add(args[i + 1]);
                i += 2;
            }
            else if (a.StartsWith("--server=", StringComparison.Ordinal) || a.StartsWith("--token=", StringComparison.Ordinal))
            {
                var eq = a.IndexOf('=');
                globals.Add(a[..eq]);
                globals.Add(a[(eq + 1)..]);
                i++;
            }
            else break;
        }
        return (globals, args.Skip(i).ToList());
    }

    private static int Fail(CliConsole console, bool json, int code, string kind, string message)
    {
        console.Error.WriteLine($"error: {message}");
        if (json) Render.Json(console.Out, new ErrorOutput(kind, code, message));
        return code;
    }
}
