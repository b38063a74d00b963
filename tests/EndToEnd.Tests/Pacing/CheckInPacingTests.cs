using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>A check-in answered 429 is the server pacing the device: it is waited out, never counted as a failed attempt.</summary>
public sealed class CheckInPacingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_agent_allowed_one_failed_attempt_waits_out_429_check_ins_and_installs()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-paced", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var gateway = rig.Gateway;

        var refused = 0;
        gateway.OnCheckIn = async c => Interlocked.Increment(ref refused) <= 3
            ? (429, """{"error":"throttled","message":"check-in rate exceeded; retry later"}""")
            : await gateway.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
        var r = await rig.RunAgentAsync();
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(3, r.Output.Split('\n').Count(l => l.Contains("paced by the server")));
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var state = await rig.Node.StateAsync("dev-paced");
        Assert.Equal(rig.V1.VersionId, state.InstalledVersionId);
        Assert.Equal(0, state.FailedAttempts);
    }
}
