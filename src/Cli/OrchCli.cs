using Orchestrator.ChunkStore.Validation;
using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Output;
using Orchestrator.Cli.Palettes;

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
        return registry;
    }

    /// <summary>Runs one command line; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, CliConsole console, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(console);
        var json = args.Contains("--json");
        try
        {
            var parsed = CreateRegistry().Parse(args);
            if (parsed.Help is not null)
            {
                console.Out.WriteLine(parsed.Help);
                return ExitCodes.Success;
            }
            var invocation = new CommandInvocation(parsed.Command!, parsed.Switches, parsed.Positionals, console);
            return await parsed.Command!.Handler(invocation, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException ex) { return Fail(console, json, ExitCodes.Usage, "usage", ex.Message); }
        catch (InvalidInputException ex) { return Fail(console, json, ExitCodes.InvalidInput, "invalid_input", ex.Message); }
        catch (IntegrityException ex) { return Fail(console, json, ExitCodes.IntegrityProblem, "integrity", ex.Message); }
        catch (StoreBusyException ex) { return Fail(console, json, ExitCodes.Busy, "busy", ex.Message); }
        catch (OperationCanceledException) { return Fail(console, json, ExitCodes.Failure, "cancelled", "Cancelled."); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(console, json, ExitCodes.Failure, "io", $"{ex.Message} (check the path, free space and permissions, then retry)");
        }
    }

    private static int Fail(CliConsole console, bool json, int code, string kind, string message)
    {
        console.Error.WriteLine($"error: {message}");
        if (json) Render.Json(console.Out, new { error = kind, exitCode = code, message });
        return code;
    }
}
