using Orchestrator.DeviceAgent.Simulation;

return await SimulateCommand.RunAsync(args, Console.Out, Console.Error);
