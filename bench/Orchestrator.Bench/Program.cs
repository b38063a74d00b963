using Orchestrator.Bench.DeviceActors;
using Orchestrator.CommandLine;

// Benchmark harness: `dotnet run -c Release --project bench/Orchestrator.Bench -- <mode> [options]`.
// Results go to bench/results/*.md (each mode writes its own file).
try
{
    return args.FirstOrDefault() switch
    {
        "device-actors" => await DeviceActorsBenchmark.Run(args[1..]),
        _ => Usage(),
    };
}
catch (UsageException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

static int Usage()
{
    Console.Error.WriteLine("usage: Orchestrator.Bench device-actors [--devices N] [--events-per-device E] [--backend sqlite,postgres] [--out FILE]");
    return 2;
}
