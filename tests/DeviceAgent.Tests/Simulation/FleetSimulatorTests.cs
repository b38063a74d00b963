using System.Collections.Concurrent;
using Orchestrator.DeviceAgent.Simulation;
using Orchestrator.DeviceAgent.Tests.Support;

namespace Orchestrator.DeviceAgent.Tests.Simulation;

public sealed class FleetSimulatorTests
{
    private static SimulationOptions Options(string root, string gateway, string prefix = "dev-") => new()
    {
        Devices = 1, Gateway = gateway, Root = root, Product = "acme", ContentKey = new byte[32], TrustRoot = new byte[32], IdPrefix = prefix,
        Concurrency = 1, CheckInIntervalSeconds = 0.05, StartSpreadSeconds = 0, OneSessionPerDevice = true, Seed = 1,
        Download = new() { BackoffBaseMilliseconds = 10, BackoffCapMilliseconds = 50, RequestTimeoutSeconds = 5 },
    };

    [Theory]
    [InlineData("../escape-")]
    [InlineData("a/b-")]
    [InlineData("-dash")]
    [InlineData("has space")]
    public void A_prefix_that_makes_invalid_device_ids_is_refused_before_any_folder_is_written(string prefix)
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "fleet");
        var e = Assert.Throws<ArgumentException>(() => new FleetSimulator(Options(root, "http://127.0.0.1:1/", prefix)));
        Assert.Contains("--prefix", e.Message);
        Assert.False(Directory.Exists(root));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task Only_check_ins_the_gateway_answered_are_reported_as_acknowledged()
    {
        using var dir = new TempDir();
        var store = dir.Folder("store");
        await using var gateway = await FakeGateway.StartAsync(store, "secret", "dev-00000");
        gateway.BusyCheckIns = 1; // the first check-in gets 503 + Retry-After
        var acknowledged = new ConcurrentQueue<string>();
        using var fleet = new FleetSimulator(Options(dir.Folder("fleet"), gateway.BaseUrl))
        {
            CheckInAcknowledged = (id, _) => acknowledged.Enqueue(id),
        };
        await fleet.PrepareAsync((_, _) => Task.FromResult("secret"), CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var final = await fleet.RunAsync(TimeSpan.FromMilliseconds(50), null, null, timeout.Token);

        Assert.Equal(2, gateway.CheckIns.Count);
        Assert.Equal(["dev-00000"], acknowledged);
        Assert.Equal(1, final.CheckIns);
        Assert.Equal(1, final.FailedAttempts);
    }
}
