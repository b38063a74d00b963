using Orchestrator.Node.Hosting;

// One node of the cluster. Defaults (appsettings.json): all roles, SQLite in ./data, store in ./data/store,
// HTTP on localhost:5080. Override with ORCH_-prefixed environment variables or --Section:Key=value arguments.
NodeCommandLine.Parsed command;
try
{
    command = NodeCommandLine.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"orchestrator: {e.Message}");
    return 2;
}
switch (command.Command)
{
    case NodeCommand.Help:
        Console.WriteLine(NodeCommandLine.Usage);
        return 0;
    case NodeCommand.Version:
        Console.WriteLine($"orchestrator {NodeCommandLine.Version}");
        return 0;
    case NodeCommand.Demo:
        return await Orchestrator.Node.Demo.DemoCommand.RunAsync(command.Rest);
}

WebApplication app;
try
{
    app = NodeApp.Build(args);
}
catch (Exception e) when (StartupFailure.Describe(e) is { } message)
{
    Console.Error.WriteLine($"orchestrator: {message}");
    return 2;
}
try
{
    await app.StartAsync();
}
catch (Exception e) when (StartupFailure.Describe(e) is { } message)
{
    Console.Error.WriteLine($"orchestrator: {message}");
    using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
    try { await app.StopAsync(stop.Token); }
    catch (Exception) { /* the process exits anyway; the message above is what the operator needs */ }
    return 2;
}
await app.WaitForShutdownAsync();
await app.DisposeAsync();
// 0, or what the node set before it stopped itself (ClusterFormation.StopWhenJoinFails).
return Environment.ExitCode;
