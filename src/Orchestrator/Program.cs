using Orchestrator.Node.Hosting;

// One node of the cluster. Defaults (appsettings.json): all roles, SQLite in ./data, store in ./data/store,
// HTTP on localhost:5080. Override with ORCH_-prefixed environment variables or --Section:Key=value arguments.
if (args.Length > 0 && args[0] == "demo") return await Orchestrator.Node.Demo.DemoCommand.RunAsync(args[1..]);
WebApplication app;
try
{
    app = NodeApp.Build(args);
}
catch (InvalidOperationException ex) when (ex.Message.StartsWith("Invalid configuration", StringComparison.Ordinal) || ex.Message.StartsWith("Configuration cannot", StringComparison.Ordinal))
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}
await app.RunAsync();
return 0;
