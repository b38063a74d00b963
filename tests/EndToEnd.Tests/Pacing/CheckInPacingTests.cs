using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Trust.Support;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Pacing;

/// <summary>
/// A check-in answered 429, or 503 <c>node_busy</c> (the gateway's admission refused it and recorded nothing), is the
/// server pacing the device: it is waited out for the Retry-After the server sent, never counted as a failed attempt.
/// </summary>
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

    [Fact]
    public async Task An_agent_allowed_one_failed_attempt_waits_out_node_busy_check_ins_for_their_retry_after_and_installs()
    {
        await using var rig = await HostileGatewayRig.StartAsync("dev-busy", TestDevice.FastDownloads with { MaxSessionAttempts = 1 });
        var gateway = rig.Gateway;
        gateway.CheckInRetryAfterSeconds = 2;
        var refusedAt = new List<DateTime>();
        DateTime? answeredAt = null;
        gateway.OnCheckIn = async c =>
        {
            lock (refusedAt)
            {
                if (refusedAt.Count < 2)
                {
                    refusedAt.Add(DateTime.UtcNow);
                    return (503, """{"error":"node_busy","message":"The gateway is at its check-in limit; nothing was recorded. Check in again after 2 s (Retry-After)."}""");
                }
                answeredAt ??= DateTime.UtcNow;
            }
            return await gateway.ForwardAsync(c.DeviceId, c.Body, c.Authorization);
        };
        var r = await rig.RunAgentAsync();
        output.WriteLine(r.Output + r.Error);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(2, r.Output.Split('\n').Count(l => l.Contains("paced by the server") && l.Contains("node_busy")));
        // Each wait was the server's Retry-After, not the agent's own (much shorter) backoff.
        Assert.True(refusedAt[1] - refusedAt[0] >= TimeSpan.FromSeconds(1.9), $"second check-in {(refusedAt[1] - refusedAt[0]).TotalSeconds:F2} s after the first refusal");
        Assert.True(answeredAt!.Value - refusedAt[1] >= TimeSpan.FromSeconds(1.9), $"third check-in {(answeredAt.Value - refusedAt[1]).TotalSeconds:F2} s after the second refusal");
        Assert.Equal(rig.V1.InventoryDigest, Releases.ClientDigest(rig.Device));
        var state = await rig.Node.StateAsync("dev-busy");
        Assert.Equal(rig.V1.VersionId, state.InstalledVersionId);
        Assert.Equal(0, state.FailedAttempts);
    }
}
