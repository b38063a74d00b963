// orch-agent: the device-side launcher and updater (src/DeviceAgent/README.md).
return await Orchestrator.DeviceAgent.AgentCommandLine.RunAsync(args, Console.Out, Console.Error);
