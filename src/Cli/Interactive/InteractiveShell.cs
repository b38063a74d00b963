using Orchestrator.Cli.CommandLine;
using Orchestrator.Cli.Server;
using Orchestrator.Messages.Admin;

namespace Orchestrator.Cli.Interactive;

/// <summary>
/// <c>orch</c> with no command: asks the node to describe its palettes (<c>GET /admin/v1/palettes</c>) and then runs
/// one command per line, with help and TAB completion from that description. Reads keys on a terminal, lines from
/// piped input otherwise. Ctrl+C stops the running command (e.g. a watch), not the shell; 'exit' or end of input
/// leaves. The exit code is that of the last command run.
/// </summary>
public static class InteractiveShell
{
    /// <summary>The prompt.</summary>
    public const string Prompt = "orch> ";

    /// <summary>Runs the shell; <paramref name="globals"/> are the --server/--token/--json switches given on the command line.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> globals, CliConsole console, CancellationToken cancellationToken)
    {
        var local = OrchCli.CreateRegistry();
        PaletteCatalogView? described = null;
        string? server = null;
        try
        {
            using var client = AdminClient.Resolve(Switch(globals, "server"), Switch(globals, "token"), console);
            server = client.Server.ToString();
            described = await client.GetAsync<PaletteCatalogView>("/admin/v1/palettes", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AdminApiException or UsageException)
        {
            console.Error.WriteLine($"warning: help and completion cover this orch's own commands only: {ex.Message}");
        }
        var catalog = CommandCatalog.Build(local, described);
        var completer = new Completer(catalog);
        console.Out.WriteLine(described is null
            ? "orch interactive mode. TAB completes, 'help' lists commands, 'exit' leaves."
            : $"orch interactive mode, node {described.Node} at {server}. TAB completes, 'help' lists commands, 'exit' leaves.");

        var editor = console.KeyboardAttached ? new LineEditor(completer, console.Out) : null;
        CancellationTokenSource? running = null;
        ConsoleCancelEventHandler? onCancel = null;
        if (console.KeyboardAttached)
        {
            // Ctrl+C cancels the command in progress and keeps the shell.
            onCancel = (_, e) =>
            {
                e.Cancel = true;
                running?.Cancel();
            };
            Console.CancelKeyPress += onCancel;
        }
        var last = ExitCodes.Success;
        try
        {
            while (!cancellationToken.IsCancellationRequested || console.KeyboardAttached)
            {
                var line = editor is not null ? editor.ReadLine(Prompt) : await ReadPipedAsync(console, cancellationToken).ConfigureAwait(false);
                if (line is null) break;
                IReadOnlyList<string> words;
                try { words = LineSplitter.Split(line); }
                catch (UsageException ex)
                {
                    console.Error.WriteLine($"error: {ex.Message}");
                    last = ExitCodes.Usage;
                    continue;
                }
                if (words.Count == 0 || words[0].StartsWith('#')) continue;
                if (words[0] is "exit" or "quit") break;
                if (words[0] is "help" or "?")
                {
                    console.Out.WriteLine(catalog.Help(words.Count > 1 ? words[1] : null));
                    continue;
                }
                var args = words.ToList();
                // Switches given to 'orch' itself apply to every command unless the line repeats them.
                for (var i = 0; i < globals.Count; i++)
                {
                    var name = globals[i];
                    var takesValue = name is "--server" or "--token";
                    if (!args.Contains(name)) { args.Add(name); if (takesValue) args.Add(globals[i + 1]); }
                    if (takesValue) i++;
                }
                using (running = console.KeyboardAttached ? new CancellationTokenSource() : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    last = await OrchCli.RunAsync([.. args], console, running.Token).ConfigureAwait(false);
                }
                running = null;
            }
        }
        finally
        {
            if (onCancel is not null) Console.CancelKeyPress -= onCancel;
        }
        return last;
    }

    private static async Task<string?> ReadPipedAsync(CliConsole console, CancellationToken ct)
    {
        if (console.In is null) return null;
        if (console.IsTerminal) { console.Out.Write(Prompt); console.Out.Flush(); }
        return await console.In.ReadLineAsync(ct).ConfigureAwait(false);
    }

    private static string? Switch(IReadOnlyList<string> globals, string name)
    {
        var i = globals.ToList().IndexOf("--" + name);
        return i >= 0 && i + 1 < globals.Count ? globals[i + 1] : null;
    }
}
