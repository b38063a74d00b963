using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>A device re-provisioned on a fresh disk (new zones, rotated credential) is served at once.</summary>
public sealed class AgentReprovisionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_rotated_credential_starts_the_request_sequence_over()
    {
        await using var node = await NodeUnderTest.StartAsync();
        using var store = new TestStore(node.StoreRoot);
        store.Publish("1.0", Releases.V1());
        var secret = await node.ProvisionAsync("dev-reimaged");
        using (var old = new TestDevice(node.BaseUrl, credential: secret, deviceId: "dev-reimaged"))
        {
            // Two starts: the second signs from its persisted ceiling, a day of milliseconds ahead of the clock.
            for (var i = 0; i < 2; i++)
            {
                var start = await AgentProcess.RunAsync(["run", "--config", old.Config.SourcePath!, "--no-client"]);
                Assert.True(start.ExitCode == 0, start.Output + start.Error);
            }
        }
        var before = (await node.StateAsync("dev-reimaged")).LastRequestSequence;
        Assert.True(before > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 3_600_000, $"high-water mark {before} is not ahead of the clock");

        // The disk is replaced: new zones (no ceiling), a new secret. Its clock-based sequence is far below the old mark.
        var rotated = await node.ProvisionAsync("dev-reimaged", rotate: true);
        using var fresh = new TestDevice(node.BaseUrl, credential: rotated, deviceId: "dev-reimaged",
            download: TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var run = await AgentProcess.RunAsync(["run", "--config", fresh.Config.SourcePath!, "--no-client"]);
        output.WriteLine(run.Output + run.Error);
        Assert.Equal(0, run.ExitCode);
        var after = (await node.StateAsync("dev-reimaged")).LastRequestSequence;
        Assert.InRange(after, 1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 60_000);
    }
}
