using Orchestrator.Cli;
using Orchestrator.Cli.CommandLine;

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
return await OrchCli.RunAsync(args, CliConsole.System(), cancel.Token);
