using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Orchestrator.DeviceActors.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Persistence.Journal;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.DeviceActors.Tests.Infrastructure;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Serialization;
using Xunit.Abstractions;

namespace Orchestrator.DeviceActors.Tests.Actor;

/// <summary>
/// Idle passivation (<see cref="DeviceActorSettings.IdlePassivateAfter"/>) through the real shard region of a one-node
/// cluster: a settled device's actor stops soon after its answer, its next incarnation (recovered from the snapshot it
/// saved) answers exactly as it would have, a device with work stays live, and the node's silence watch still marks a
/// passivated device Offline when its silence is due, but never earlier.
/// </summary>
public abstract class IdlePassivationSuite<TSelf>(ITestOutputHelper output) : DatabaseKitsTestBase(TSelf.Backend, output) where TSelf : IBackendSuite
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static DeviceActorSettings Settings(TimeSpan offlineAfter, TimeSpan idle) =>
        new(offlineAfter, 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5) < offlineAfter ? TimeSpan.FromMinutes(5) : TimeSpan.Zero, idle);

    private async Task<(Akka.TestKit.Xunit2.TestKit Kit, IActorRef Region)> StartRegionAsync(DeviceActorSettings settings, IDeviceSightings? sightings = null)
    {
        var kit = await NewRegionKit(new DeviceActorsHostingOptions(Db.Options, HostsRegion: true, settings, ShardCount: 10, sightings), """
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.cluster.roles = ["devices"]
            akka.cluster.sharding.distributed-data.durable.keys = []
            akka.coordinated-shutdown.exit-clr = off
            akka.actor.serialize-messages = off
            """);
        var cluster = Cluster.Get(kit.Sys);
        await cluster.JoinAsync(cluster.SelfAddress);
        return (kit, await kit.Registry.GetAsync<DeviceShardRegion>());
    }

    private static async Task<T> Ask<T>(IActorRef region, object c) => await region.Ask<T>(c, Wait);

    private static async Task<bool> IsLive(IActorRef region, string id) =>
        (await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, Wait)).Shards.Any(s => s.EntityIds.Contains(id));

    private static async Task UntilPassivated(Akka.TestKit.Xunit2.TestKit kit, IActorRef region, string id) =>
        await kit.AwaitAssertAsync(async () => Assert.False(await IsLive(region, id), $"the actor of {id} is still live"), Wait, TimeSpan.FromMilliseconds(50));

    private static string Json(DeviceState s) => JsonSerializer.Serialize(s, OrchestratorSerializer.JsonOptions);

    private static string Pid(string id) => DeviceActor.PersistenceIdPrefix + id;

    private static CheckIn Clean(string id, long version, long sequence, DateTimeOffset at) =>
        new(id, "acme", version, "d-ok", "d-ok", $"{version}.0", $"manifests/acme/{version}.json", [], "1.0", at, sequence);

    [BackendFact]
    public async Task An_idle_device_passivates_after_its_answer_and_its_next_incarnation_answers_identically()
    {
        var (kit, region) = await StartRegionAsync(Settings(TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(300)));
        const string id = "idle-1";
        var first = await Ask<CheckInDecision>(region, Clean(id, 3, 10, T0));
        // A heartbeat: journaled nowhere, but its sequence number is used up in memory.
        await Ask<CheckInDecision>(region, Clean(id, 3, 11, T0.AddMinutes(1)));
        var before = await Ask<DeviceState>(region, new GetDeviceState(id));
        Assert.Equal(11, before.LastRequestSequence);
        await UntilPassivated(kit, region, id);

        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM snapshot WHERE persistence_id = '{Pid(id)}'"));
        // A wake-up by the silence watch for a device heard from recently (a stale watch) changes nothing.
        region.Tell(new CheckSilence(id));
        var after = await Ask<DeviceState>(region, new GetDeviceState(id));
        Assert.True(await IsLive(region, id));
        Assert.Equal(Json(before), Json(after));
        // The in-memory high-water mark survived passivation: the heartbeat cannot be replayed.
        Assert.Equal(DeviceRequestSequence.ReplayedCode, (await Ask<DeviceCommandRejected>(region, Clean(id, 3, 11, T0.AddMinutes(1)))).Code);
        var again = await Ask<CheckInDecision>(region, Clean(id, 3, 12, T0.AddMinutes(2)));
        Assert.Equal((first.Action, first.Status, first.TargetVersionId, first.FloorVersionId), (again.Action, again.Status, again.TargetVersionId, again.FloorVersionId));
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));

        // Passivated again, then woken by an assignment: the upgrade is decided from the recovered state.
        await UntilPassivated(kit, region, id);
        Assert.Equal(DeviceStatus.UpgradeAssigned, (await Ask<DeviceCommandAccepted>(region, new AssignTarget(id, "acme", "4.0", 4, "manifests/acme/4.json", "r1"))).Status);
        var upgrade = await Ask<CheckInDecision>(region, Clean(id, 3, 13, T0.AddMinutes(3)));
        Assert.Equal((UpdateAction.Upgrade, 4L), (upgrade.Action, upgrade.TargetVersionId!.Value));
        // A device with work stays live: its reports are answered without a recovery.
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        Assert.True(await IsLive(region, id), "a device with work in flight was passivated");
        Assert.Equal(DeviceStatus.Completed, (await Ask<DeviceCommandAccepted>(region, new ReportCompletion(id, 4, "d-4", T0.AddMinutes(4), 14))).Status);
        await UntilPassivated(kit, region, id);
        var done = await Ask<DeviceState>(region, new GetDeviceState(id));
        Assert.Equal((DeviceStatus.Completed, 4L, 14L), (done.Status, done.InstalledVersionId, done.LastRequestSequence));
    }

    [BackendFact]
    public async Task An_idle_device_whose_last_request_was_journaled_passivates_without_a_snapshot_and_recovers_it_from_the_journal()
    {
        var (kit, region) = await StartRegionAsync(Settings(TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(300)));
        const string id = "journaled-1";
        var snapshots = $"SELECT COUNT(*) FROM snapshot WHERE persistence_id = '{Pid(id)}'";
        // The journal counts as holding the contact only when the actor hears it within JournalHoldsContactTolerance of the
        // gateway's stamp; a first message also waits for its shard to be allocated, which on a loaded machine can take
        // longer (the actor then rightly saves a snapshot). So the actor is started before the check-in is stamped.
        Assert.Null((await Ask<DeviceState>(region, new GetDeviceState(id))).Product);
        // Stamped now, as a gateway stamps a check-in: the first one is journaled, so the journal holds all the actor knows.
        var first = await Ask<CheckInDecision>(region, Clean(id, 3, 10, DateTimeOffset.UtcNow));
        var before = await Ask<DeviceState>(region, new GetDeviceState(id));
        await UntilPassivated(kit, region, id);
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        Assert.Equal(0, await Db.Scalar(snapshots));

        // The next incarnation holds the same state, refuses the journaled request again, and a stale silence check of a
        // device heard from just now changes nothing.
        region.Tell(new CheckSilence(id));
        Assert.Equal(Json(before), Json(await Ask<DeviceState>(region, new GetDeviceState(id))));
        Assert.Equal(DeviceRequestSequence.ReplayedCode, (await Ask<DeviceCommandRejected>(region, Clean(id, 3, 10, DateTimeOffset.UtcNow))).Code);
        Assert.Equal(0, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}' AND manifest = 'DeviceWentOffline.v1'"));

        // A heartbeat is journaled nowhere: its sequence mark and contact time exist only in memory, so passivation saves them.
        var heartbeat = await Ask<CheckInDecision>(region, Clean(id, 3, 11, DateTimeOffset.UtcNow));
        Assert.Equal((first.Action, first.Status), (heartbeat.Action, heartbeat.Status));
        await UntilPassivated(kit, region, id);
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        Assert.Equal(1, await Db.Scalar(snapshots));
        Assert.Equal(DeviceRequestSequence.ReplayedCode, (await Ask<DeviceCommandRejected>(region, Clean(id, 3, 11, DateTimeOffset.UtcNow))).Code);
        Assert.Equal(11, (await Ask<DeviceState>(region, new GetDeviceState(id))).LastRequestSequence);
    }

    [BackendFact]
    public async Task A_device_never_heard_from_passivates_soon_without_a_snapshot_and_one_that_checked_in_stays_live()
    {
        // Idle passivation off: only the never-heard rule can stop these actors before the offline timeout.
        var settings = new DeviceActorSettings(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2),
            TimeSpan.FromMinutes(5), IdlePassivateAfter: TimeSpan.Zero, UnheardPassivateAfter: TimeSpan.FromMilliseconds(300));
        var (kit, region) = await StartRegionAsync(settings);
        const string id = "registered-only";
        Assert.Equal(DeviceStatus.Unknown, (await Ask<DeviceCommandAccepted>(region, new RegisterDevice(id, "acme", ["eu"], T0))).Status);
        await UntilPassivated(kit, region, id);
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'"));
        Assert.Equal(0, await Db.Scalar($"SELECT COUNT(*) FROM snapshot WHERE persistence_id = '{Pid(id)}'"));

        // A query wakes it; the journal alone gives back what was registered, and it stops again.
        var state = await Ask<DeviceState>(region, new GetDeviceState(id));
        Assert.Equal(("acme", "eu"), (state.Product, string.Join(",", state.Tags)));
        await UntilPassivated(kit, region, id);

        // Once the device checked in, the actor holds contact facts and stays live (idle passivation is off).
        await Ask<CheckInDecision>(region, Clean(id, 3, 1, T0.AddMinutes(1)));
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        Assert.True(await IsLive(region, id), "a device that checked in was passivated with idle passivation off");
    }

    [BackendFact]
    public async Task First_events_written_without_actors_are_guarded_by_the_journal_and_a_stale_live_actor_told_to_recover_reads_them()
    {
        // Nothing passivates on its own here: only RecoverDevice may stop the stale actor.
        var settings = new DeviceActorSettings(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2),
            TimeSpan.FromMinutes(5), IdlePassivateAfter: TimeSpan.Zero, UnheardPassivateAfter: TimeSpan.Zero);
        var (kit, region) = await StartRegionAsync(settings);
        DeviceRegistered Registered(string tag) => new("acme", [tag], T0);

        // An actor asked about a device with no journal is live, holding no events; the cluster-wide listing names it.
        Assert.Null((await Ask<DeviceState>(region, new GetDeviceState("stale-1"))).Product);
        Assert.Contains("stale-1", await DeviceSharding.LiveDeviceIdsAsync(kit.Sys, region, Wait, CancellationToken.None));
        Assert.Empty(await FirstEvents.JournaledAsync(kit.Sys, [Pid("stale-1"), Pid("fresh-1")], Wait, CancellationToken.None));

        Assert.Equal(new[] { true, true }, await FirstEvents.WriteAsync(kit.Sys, [(Pid("stale-1"), Registered("a")), (Pid("fresh-1"), Registered("a"))]));
        Assert.Equal([Pid("fresh-1"), Pid("stale-1")],
            (await FirstEvents.JournaledAsync(kit.Sys, [Pid("stale-1"), Pid("fresh-1"), Pid("none")], Wait, CancellationToken.None)).Order(StringComparer.Ordinal));
        // Sequence number 1 is taken: that write fails alone, its neighbour commits, and nothing is written twice.
        Assert.Equal(new[] { false, true }, await FirstEvents.WriteAsync(kit.Sys, [(Pid("stale-1"), Registered("b")), (Pid("fresh-2"), Registered("b"))]));
        Assert.Equal(1, await Db.Scalar($"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid("stale-1")}'"));
        // Tagged by the journal's event adapter as an actor's own event is (the registry reads by tag).
        Assert.True(await Db.Scalar($"SELECT COUNT(*) FROM tags WHERE persistence_id = '{Pid("fresh-2")}'") >= 1);

        // The live actor recovered before the write: it still answers without it until told to recover.
        Assert.Null((await Ask<DeviceState>(region, new GetDeviceState("stale-1"))).Product);
        region.Tell(new RecoverDevice("stale-1", 1));
        await UntilPassivated(kit, region, "stale-1");
        var recovered = await Ask<DeviceState>(region, new GetDeviceState("stale-1"));
        Assert.Equal(("acme", "a", 1L), (recovered.Product, string.Join(",", recovered.Tags), recovered.EventCount));

        // An actor started after the write recovers it; its own next event follows the written one.
        Assert.Equal("acme", (await Ask<DeviceState>(region, new GetDeviceState("fresh-1"))).Product);
        Assert.Equal(DeviceStatus.Unknown, (await Ask<DeviceCommandAccepted>(region, new RegisterDevice("fresh-1", "acme", ["c"], T0))).Status);
        Assert.Equal(2, await Db.Scalar($"SELECT MAX(sequence_number) FROM journal WHERE persistence_id = '{Pid("fresh-1")}'"));
    }

    [BackendFact]
    public async Task Never_heard_devices_registered_while_their_actors_passivate_all_passivate_again()
    {
        // Bulk registration reads every device's state, then registers it: with many devices the second message of an early
        // device reaches the shard while its actor is passivating (the shard buffers it and starts a new incarnation).
        var settings = new DeviceActorSettings(TimeSpan.FromMinutes(10), 100, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2),
            TimeSpan.FromMinutes(5), IdlePassivateAfter: TimeSpan.Zero, UnheardPassivateAfter: TimeSpan.FromMilliseconds(200));
        var (kit, region) = await StartRegionAsync(settings);
        var ids = Enumerable.Range(0, 60).Select(i => $"bulk-{i:D3}").ToList();
        for (var round = 0; round < 3; round++)
        {
            await Task.WhenAll(ids.Select(id => Ask<DeviceState>(region, new GetDeviceState(id))));
            await Task.Delay(TimeSpan.FromMilliseconds(150 + 25 * round));
            await Task.WhenAll(ids.Select(async (id, i) =>
            {
                await Task.Delay(i % 10 * 10);
                return await Ask<DeviceCommandAccepted>(region, new RegisterDevice(id, "acme", [$"r{round}"], T0));
            }));
        }
        await kit.AwaitAssertAsync(async () =>
        {
            var live = (await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, Wait)).Shards.Sum(s => s.EntityIds.Count);
            Assert.True(live == 0, $"{live} actors of never-heard devices still live");
        }, Wait, TimeSpan.FromMilliseconds(100));
        Assert.Equal(3 * ids.Count, await Db.Scalar("SELECT COUNT(*) FROM journal WHERE persistence_id LIKE 'device-bulk-%'"));
    }

    [BackendFact]
    public async Task A_passivated_idle_device_is_marked_offline_when_its_silence_is_due_and_not_before()
    {
        var offlineAfter = TimeSpan.FromSeconds(2);
        var (kit, region) = await StartRegionAsync(Settings(offlineAfter, TimeSpan.FromMilliseconds(200)));
        const string id = "idle-silent";
        // Taken before the check-in is sent: the actor hears it later, so the silence it measures is shorter than this.
        var lastCheckIn = DateTime.UtcNow;
        await Ask<CheckInDecision>(region, Clean(id, 3, 1, T0));
        await UntilPassivated(kit, region, id);

        var offline = $"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}' AND manifest = 'DeviceWentOffline.v1'";
        await kit.AwaitAssertAsync(async () => Assert.Equal(1, await Db.Scalar(offline)), Wait, TimeSpan.FromMilliseconds(100));
        var silence = DateTime.UtcNow - lastCheckIn;
        Assert.True(silence >= offlineAfter, $"marked Offline {silence.TotalMilliseconds:F0} ms after the check-in, before the {offlineAfter.TotalMilliseconds} ms silence period");
        await UntilPassivated(kit, region, id);
        Assert.Equal(DeviceStatus.Offline, (await Ask<DeviceState>(region, new GetDeviceState(id))).Status);

        // Traffic brings the Offline device back, as it would a live one.
        Assert.Equal(DeviceStatus.Idle, (await Ask<CheckInDecision>(region, Clean(id, 3, 2, T0.AddMinutes(1)))).Status);
    }

    [BackendFact]
    public async Task A_passivated_device_sighted_by_the_node_stays_online_and_asleep_and_goes_offline_an_offline_timeout_after_its_last_sighting()
    {
        var offlineAfter = TimeSpan.FromSeconds(2);
        var sightings = new Sightings();
        var (kit, region) = await StartRegionAsync(Settings(offlineAfter, TimeSpan.FromMilliseconds(200)), sightings);
        const string id = "idle-sighted";
        await Ask<CheckInDecision>(region, Clean(id, 3, 1, T0));
        await UntilPassivated(kit, region, id);
        var journal = $"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}'";
        var events = await Db.Scalar(journal);

        // Sighted over and over for three offline timeouts: the watch reschedules the device instead of waking its actor
        // (a woken actor would stay live for its 200 ms idle period, which the polling here would see).
        var until = DateTime.UtcNow + 3 * offlineAfter;
        while (DateTime.UtcNow < until)
        {
            sightings.Sight(id, DateTimeOffset.UtcNow);
            Assert.False(await IsLive(region, id), "the silence watch woke the actor of a device sighted since");
            await Task.Delay(50);
        }
        Assert.Equal(events, await Db.Scalar(journal));

        var lastSighting = sightings.Last(id);
        var offline = $"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}' AND manifest = 'DeviceWentOffline.v1'";
        await kit.AwaitAssertAsync(async () => Assert.Equal(1, await Db.Scalar(offline)), Wait, TimeSpan.FromMilliseconds(100));
        var silence = DateTimeOffset.UtcNow - lastSighting;
        Assert.True(silence >= offlineAfter, $"marked Offline {silence.TotalMilliseconds:F0} ms after its last sighting, before the {offlineAfter.TotalMilliseconds} ms silence period");
    }

    [BackendFact]
    public async Task A_live_actor_whose_silence_timer_fires_stays_online_while_the_node_sights_its_device()
    {
        var offlineAfter = TimeSpan.FromSeconds(2);
        var sightings = new Sightings();
        // No idle passivation: the actor stays live and its own silence timer decides.
        var (kit, region) = await StartRegionAsync(Settings(offlineAfter, TimeSpan.Zero), sightings);
        const string id = "live-sighted";
        await Ask<CheckInDecision>(region, Clean(id, 3, 1, T0));
        var until = DateTime.UtcNow + 3 * offlineAfter;
        while (DateTime.UtcNow < until)
        {
            sightings.Sight(id, DateTimeOffset.UtcNow);
            await Task.Delay(300);
        }
        var offline = $"SELECT COUNT(*) FROM journal WHERE persistence_id = '{Pid(id)}' AND manifest = 'DeviceWentOffline.v1'";
        Assert.Equal(0, await Db.Scalar(offline));
        Assert.True(await IsLive(region, id));

        var lastSighting = sightings.Last(id);
        await kit.AwaitAssertAsync(async () => Assert.Equal(1, await Db.Scalar(offline)), Wait, TimeSpan.FromMilliseconds(100));
        var silence = DateTimeOffset.UtcNow - lastSighting;
        Assert.True(silence >= offlineAfter, $"marked Offline {silence.TotalMilliseconds:F0} ms after its last sighting");
    }

    // The node's sightings as the gateway's fast path would record them.
    private sealed class Sightings : IDeviceSightings
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _last = new(StringComparer.Ordinal);

        public void Sight(string id, DateTimeOffset at) => _last[id] = at;

        public DateTimeOffset Last(string id) => _last[id];

        public DateTimeOffset? LastSighted(string deviceId) => _last.TryGetValue(deviceId, out var at) ? at : null;
    }
}

public sealed class SqliteIdlePassivationTests(ITestOutputHelper output) : IdlePassivationSuite<SqliteIdlePassivationTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.Sqlite;
}

public sealed class PostgresIdlePassivationTests(ITestOutputHelper output) : IdlePassivationSuite<PostgresIdlePassivationTests>(output), IBackendSuite
{
    public static PersistenceBackend Backend => PersistenceBackend.PostgreSql;
}
