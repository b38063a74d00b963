using Orchestrator.DeviceAgent.Session;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Tests.Session;

/// <summary>Protocol v2 on the agent side: concurrent reports arrive in sequence order, and sequences survive restarts.</summary>
public sealed class RequestSigningTests : GatewaySessionTestBase
{
    [Fact]
    public async Task Concurrent_reports_reach_the_gateway_in_strictly_increasing_sequence_order()
    {
        var client = new HttpGatewayClient(Http, Gateway.BaseUrl, Device.Config.DeviceId, TestDevice.Credential, TimeSpan.FromSeconds(30),
            new RequestSequence(Device.Layout.RequestSequenceCeiling));
        // Parallel downloads report progress from several workers at once; the fake gateway refuses any sequence
        // number that is not above the last one it accepted, as the device actor does.
        await Task.WhenAll(Enumerable.Range(1, 40).Select(i => Task.Run(() => client.ReportProgressAsync(new ProgressReport(2, i, 100, 1, 2), CancellationToken.None))));
        Assert.Equal(40, Gateway.Progress.Count);
        Assert.Equal(0, Gateway.SequenceViolations);
    }

    [Fact]
    public void Sequences_keep_increasing_across_restarts_and_a_clock_that_jumps_back()
    {
        var file = Device.Layout.RequestSequenceCeiling;
        var now = new MovableClock(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var first = new RequestSequence(file, now);
        var a = first.Next();
        var b = first.Next();
        Assert.True(b > a);
        var ceiling = long.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(ceiling > b, "the ceiling is written before a number at or above it is used");

        // A restarted agent whose clock jumped back a year starts at the persisted ceiling, above everything used.
        now.Now = now.Now.AddDays(-365);
        var restarted = new RequestSequence(file, now);
        var c = restarted.Next();
        Assert.True(c >= ceiling && c > b);
        // Lost ceiling file: the clock alone keeps numbers above what a server saw earlier (it moved on since).
        File.Delete(file);
        now.Now = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000).AddDays(2);
        Assert.True(new RequestSequence(file, now).Next() > c);
        Assert.True(File.Exists(file));
    }

    [Fact]
    public void A_reserved_ceiling_covers_the_first_number_of_a_restarted_agent_without_another_write()
    {
        var file = Device.Layout.RequestSequenceCeiling;
        var now = new MovableClock(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var used = new RequestSequence(file, now).Next();
        var before = File.ReadAllText(file);

        // A restart starts at the persisted ceiling, so its first number needs a new one: Reserve writes it ahead...
        var restarted = new RequestSequence(file, now);
        restarted.Reserve();
        var reserved = long.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.NotEqual(before, File.ReadAllText(file));
        // ...and the first request's number is above everything used before and below the reserved ceiling, with no write.
        File.SetLastWriteTimeUtc(file, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var first = restarted.Next();
        Assert.True(first > used && first < reserved);
        Assert.Equal(new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc), File.GetLastWriteTimeUtc(file));
        Assert.Equal(reserved.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(file).Trim());
    }

    private sealed class MovableClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
