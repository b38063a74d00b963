using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.State;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceActors.Tests.Registry;

/// <summary>
/// The registry's compact row keeps only some of a device's state, so it must answer exactly what the full fold answers:
/// every event kind in random orders, row summary against the summary of the actors' own full state.
/// </summary>
public sealed class DeviceRowTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Row_answers_what_the_full_state_answers_for_every_event_order()
    {
        var rng = new Random(22);
        var values = new RowValues();
        for (var run = 0; run < 3000; run++)
        {
            var id = $"dev-{run}";
            var full = DeviceState.Initial(id);
            var row = new DeviceRow(id);
            var length = rng.Next(1, 14);
            for (var seq = 1; seq <= length; seq++)
            {
                var e = RandomEvent(rng, T0.AddMinutes(seq));
                full = DeviceStateMachine.Apply(full, e, seq);
                row.Apply(e, seq, values);
                Assert.Equal(Project(Expected(full)), Project(row.ToSummary()));
                Assert.Equal(full.Decommissioned is not null, row.Decommissioned);
                foreach (var q in Queries)
                    Assert.True(Matches(full, q) == row.Matches(q), $"run {run} event {seq} ({e.GetType().Name}): filter {q} differs");
            }
        }
    }

    [Fact]
    public void Rows_share_one_copy_of_products_tags_and_assignments()
    {
        var values = new RowValues();
        var a = new DeviceRow("a");
        var b = new DeviceRow("b");
        // Each event brings its own strings, as deserialized events do.
        foreach (var row in new[] { a, b })
        {
            row.Apply(new DeviceRegistered(new string("acme".AsSpan()), [new string("eu".AsSpan())], T0), 1, values);
            row.Apply(new TargetAssigned(new TargetAssignment("acme", new string("2.0".AsSpan()), 2, "m2", new string("r1".AsSpan())), T0), 2, values);
        }
        var (sa, sb) = (a.ToSummary(), b.ToSummary());
        Assert.Same(sa.Product, sb.Product);
        Assert.Same(sa.Tags, sb.Tags);
        Assert.Same(sa.RolloutId, sb.RolloutId);
    }

    private static readonly QueryDevices[] Queries =
    [
        .. Enum.GetValues<DeviceStatus>().Select(s => new QueryDevices(s, null, null, null)),
        new(null, 3, null, null), new(null, 4, null, null), new(null, null, "eu", null), new(null, null, "us", null),
        new(null, null, null, "r1"), new(null, null, null, "r2"),
        new(null, null, null, null, Attributes: new Dictionary<string, string> { ["site"] = "eu" }),
        new(null, null, null, null, Attributes: new Dictionary<string, string> { ["site"] = "lab", ["model"] = "x1" }),
    ];

    private static bool Matches(DeviceState s, QueryDevices q) =>
        (q.Status is null || s.Status == q.Status) &&
        (q.InstalledVersionId is null || s.InstalledVersionId == q.InstalledVersionId) &&
        (q.Tag is null || s.Tags.Contains(q.Tag)) &&
        (q.RolloutId is null || s.Target?.RolloutId == q.RolloutId) &&
        (q.Attributes is null || DeviceAttributeRules.HasAll(s.Attributes, q.Attributes));

    private static DeviceSummary Expected(DeviceState s) => new(s.DeviceId, s.Status, s.Product, s.InstalledVersionId, s.Tags, s.Target?.RolloutId,
        s.Target?.VersionId, s.FailedAttempts, s.LastSeen, s.Stale, s.FloorVersionId, s.UpdaterLost is not null,
        s.ReportedAttributes is null && s.OperatorAttributes is null ? null : s.Attributes);

    private static string Project(DeviceSummary d) => d with { Tags = [], Attributes = null } + " tags=" + string.Join(",", d.Tags) +
        " attributes=" + (d.Attributes is null ? "none" : string.Join(",", d.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + "=" + a.Value)));

    /// <summary>One event of any kind, with the few versions, rollouts, tags and attributes the tests share.</summary>
    internal static IDeviceEvent RandomEvent(Random rng, DateTimeOffset at)
    {
        var version = rng.Next(2, 6);
        var rollout = rng.Next(2) == 0 ? "r1" : "r2";
        var upgrade = new WorkItem(WorkKind.Upgrade, $"{version}.0", version, $"m{version}", []);
        var repair = new WorkItem(WorkKind.Repair, $"{version}.0", version, $"m{version}", ["a.txt"]);
        var phase = (WorkPhase)rng.Next(3);
        var attempt = rng.Next(1, 4);
        return rng.Next(19) switch
        {
            0 => new DeviceRegistered("acme", rng.Next(2) == 0 ? ["eu"] : ["us", "channel:beta"], at),
            1 or 2 or 3 => new DeviceCheckedIn("acme", version, $"d{version}", "1.0", UpdateAction.None,
                rng.Next(3) switch { 0 => null, 1 => upgrade, _ => repair }, at, rng.Next(1, 100)),
            4 => new TargetAssigned(new TargetAssignment("acme", $"{version}.0", version, $"m{version}", rollout, 0, rng.Next(4) == 0), at),
            5 => new AssignmentCancelled("alice", "stop", rollout, at, GaveUp: rng.Next(2) == 0),
            6 => new ProgressRecorded(new TransferProgress(phase, 1, 9, 1, 9), at),
            7 => new AttemptFailed(new FailureInfo(phase, "timeout", attempt, 1000, at), at),
            8 => new WorkCompleted(version, $"d{version}", rng.Next(2) == 0 ? WorkKind.Upgrade : WorkKind.Repair, at),
            9 => new DeviceWentOffline(at.AddMinutes(-15), at),
            10 => new DeviceCameBack(at),
            11 => new RequestSequenceReset("agent state lost", at),
            12 => new DeviceProductChanged("acme", rng.Next(2) == 0 ? "acme" : "other", "alice", at),
            13 => new DeviceStaleChanged(rng.Next(2) == 0, at),
            14 => new DeviceUpdaterLost("launcher gone", at),
            15 => new DeviceUpdaterRestored(at),
            16 => new DeviceAttributesReported(new Dictionary<string, string> { ["site"] = rng.Next(2) == 0 ? "eu" : "us", ["model"] = "x1" }, at),
            17 => new DeviceAttributesSet(rng.Next(3) == 0 ? new Dictionary<string, string>() : new Dictionary<string, string> { ["site"] = "lab" }, "alice", at),
            _ => rng.Next(8) == 0 ? new DeviceDecommissioned("alice", "retired", at) : new DeviceCameBack(at),
        };
    }
}
