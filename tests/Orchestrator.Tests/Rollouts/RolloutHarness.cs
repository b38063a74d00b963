using Akka.Actor;
using Akka.Cluster;
using Microsoft.Data.Sqlite;
using Npgsql;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Registry;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Rollouts;
using Orchestrator.Messages.Serialization;
using Orchestrator.Node.Channels;
using Orchestrator.Node.Rollouts;
using Orchestrator.Node.Tests.Support;
using Orchestrator.TestSupport.Akka;
using Orchestrator.TestSupport;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests.Rollouts;

/// <summary>
/// A one-node cluster (roles devices + rollouts) in a TestKit: real sharded device actors and the rollout
/// coordinator singleton on a SQLite journal, or on a fresh schema of the PostgreSQL server named by ORCH_TEST_POSTGRES.
/// <see cref="RestartAsync"/> terminates the
/// actor system and starts a new one on the same database (a node crash as far as the journal is concerned).
/// </summary>
public sealed class RolloutHarness : IAsyncDisposable
{
    public static readonly DateTimeOffset T0 = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    public static readonly RolloutTarget V2 = new("acme", "2.0.0", 2, "manifests/acme/2.0.0.json");
    public static readonly RollbackVersion V1 = new(1, "1.0.0", "manifests/acme/1.0.0.json");

    private readonly string _dir;
    private readonly ITestOutputHelper _output;
    private readonly DevicePersistenceOptions _persistence;

    private RolloutHarness(string dir, ITestOutputHelper output, ManualClock? clock, PersistenceBackend backend)
    {
        _dir = dir;
        _output = output;
        Clock = clock;
        var options = backend == PersistenceBackend.Sqlite
            ? DevicePersistenceOptions.Sqlite(Path.Combine(dir, "journal.db"))
            : DevicePersistenceOptions.PostgreSql(PostgresGate.RequiredConnectionString(), "t_rollouts_" + Guid.NewGuid().ToString("N")[..16]);
        _persistence = options with { QueryRefreshInterval = TimeSpan.FromMilliseconds(100) };
    }

    public Akka.TestKit.Xunit2.TestKit Kit { get; private set; } = null!;
    private readonly List<HostedTestKit> _kits = [];
    public IActorRef Devices { get; private set; } = ActorRefs.Nobody;
    public IActorRef Rollouts { get; private set; } = ActorRefs.Nobody;
    public ManualClock? Clock { get; }
    private int _registryQueryLimit = RegistrySelection.DefaultLimit;

    /// <summary>The channel directory's proxy (with <c>channels</c> set), else Nobody.</summary>
    public IActorRef Channels { get; private set; } = ActorRefs.Nobody;
    private ChannelSettings? _channelSettings;

    public static async Task<RolloutHarness> StartAsync(ITestOutputHelper output, ManualClock? clock = null,
        PersistenceBackend backend = PersistenceBackend.Sqlite, int registryQueryLimit = RegistrySelection.DefaultLimit, ChannelSettings? channels = null)
    {
        var h = new RolloutHarness(Path.Combine(Path.GetTempPath(), "orch-rollouts-" + Guid.NewGuid().ToString("N")), output, clock, backend)
        {
            _registryQueryLimit = registryQueryLimit,
            _channelSettings = channels,
        };
        await h._persistence.PrepareDatabase();
        await h.BootAsync();
        return h;
    }

    private async Task BootAsync()
    {
        var settings = new RolloutSettings(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(300), 20,
            (TimeProvider?)Clock ?? TimeProvider.System, RegistryQueryLimit: _registryQueryLimit);
        var kit = await HostedTestKit.StartAsync("rollouts", b => b
            .AddDeviceActors(new DeviceActorsHostingOptions(_persistence, HostsRegion: true,
                new DeviceActorSettings(TimeSpan.FromMinutes(10), 50, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50))))
            .AddRollouts(new RolloutHostingOptions(HostsSingletons: true, settings, _channelSettings is null ? null : new ChannelCache(), _channelSettings)),
            _output, $$"""
            akka.loglevel = WARNING
            # serialize-messages stays off: Akka.Persistence.Sql's own internal messages (WriteFinished, the read journal's
            # sequence actor) do not survive the default serializer and the registry's live query stalls. Instead every
            # message the tests exchange with the rollout coordinator is round-tripped through our serializer in Ask.
            akka.actor.serialize-messages = off
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.cluster.roles = ["{{DeviceSharding.Role}}", "{{RolloutHosting.Role}}"]
            akka.cluster.sharding.distributed-data.durable.keys = []
            akka.cluster.singleton.hand-over-retry-interval = 200ms
            akka.coordinated-shutdown.exit-clr = off
            # Terminate is a crash here: no graceful shard hand-off or singleton hand-over, actors just stop.
            akka.coordinated-shutdown.run-by-actor-system-terminate = off
            """);
        _kits.Add(kit);
        Kit = kit;
        var cluster = Cluster.Get(Kit.Sys);
        var up = new TaskCompletionSource();
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        cluster.Join(cluster.SelfAddress);
        await up.Task.WaitAsync(Wait);
        Devices = await kit.Registry.GetAsync<DeviceShardRegion>();
        Rollouts = await kit.Registry.GetAsync<RolloutCoordinatorProxy>();
        Channels = _channelSettings is null ? ActorRefs.Nobody : await kit.Registry.GetAsync<ChannelDirectoryProxy>();
    }

    /// <summary>Terminates the actor system (no graceful hand-over of anything) and boots a new one on the same database.</summary>
    public async Task RestartAsync()
    {
        await Kit.Sys.Terminate();
        ClearPools();
        await BootAsync();
    }

    private static void ClearPools()
    {
        SqliteConnection.ClearAllPools();
        NpgsqlConnection.ClearAllPools();
    }

    public async Task<T> Ask<T>(object message)
    {
        var answer = await Rollouts.Ask<object>(RoundTrip(message), Wait);
        return Assert.IsType<T>(RoundTrip(answer));
    }

    /// <summary>Serializes and deserializes through the serializer bound to the message (our OrchestratorSerializer for our types).</summary>
    public object RoundTrip(object message)
    {
        var serializer = Assert.IsType<OrchestratorSerializer>(Kit.Sys.Serialization.FindSerializerFor(message));
        return serializer.FromBinary(serializer.ToBinary(message), serializer.Manifest(message));
    }

    public async Task<RolloutView> Create(RolloutSpec spec) => await Ask<RolloutView>(new CreateRollout(spec));

    public async Task<RolloutView> Show(string id) => await Ask<RolloutView>(new GetRollout(id));

    public async Task<DeviceState> Device(string id) => await Devices.Ask<DeviceState>(new GetDeviceState(id), Wait);

    /// <summary>Registers devices of product acme on version 1 (registration plus a first check-in).</summary>
    public async Task Register(IEnumerable<string> ids, params string[] tags)
    {
        await Task.WhenAll(ids.Select(async id =>
        {
            await Devices.Ask<DeviceCommandAccepted>(new RegisterDevice(id, "acme", tags, T0), Wait);
            await Devices.Ask<CheckInDecision>(new CheckIn(id, "acme", 1, "d1", null, null, null, [], null, T0), Wait);
        }));
    }

    /// <summary>Waits until the coordinator's device registry has seen <paramref name="count"/> devices.</summary>
    public async Task AwaitRegistry(int count)
    {
        var registry = Kit.Sys.ActorSelection($"/user/{RolloutHosting.ManagerName}/coordinator/device-registry");
        await Kit.AwaitAssertAsync(async () =>
            Assert.True((await registry.Ask<DeviceList>(new QueryDevices(null, null, null, null), TimeSpan.FromSeconds(2))).Total >= count),
            Wait, TimeSpan.FromMilliseconds(100));
    }

    /// <summary>Polls the rollout until <paramref name="done"/> holds; returns that view.</summary>
    public async Task<RolloutView> Until(string id, Func<RolloutView, bool> done, Action<RolloutView>? each = null)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            RolloutView v;
            // A query racing a crash of the rollout actor is lost (dead letter); ask again, as an operator would.
            try { v = Assert.IsType<RolloutView>(RoundTrip(await Rollouts.Ask<object>(new GetRollout(id), TimeSpan.FromSeconds(3)))); }
            catch (AskTimeoutException) when (DateTime.UtcNow < deadline) { continue; }
            each?.Invoke(v);
            if (done(v)) return v;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Rollout {id} stuck: {v.Status} wave {v.CurrentWave} {string.Join("; ", v.Waves)} {v.PauseReason}");
            await Task.Delay(50);
        }
    }

    public static RolloutSpec Spec(string id, DeviceSelector selector, IReadOnlyList<WaveSpec>? waves = null, int maxConcurrent = 100,
        double success = 1.0, double error = 0.5, int maxAttempts = 3, DateTimeOffset? startAt = null, MaintenanceWindow? window = null,
        int deviceTimeout = 0) =>
        new(id, V2, selector, waves ?? [new WaveSpec(WaveSizeKind.Percent, 100)], false, 7, maxConcurrent, 0, success, error, 0, maxAttempts,
            startAt, window, "tester", deviceTimeout);

    public static DeviceSelector Tags(params string[] tags) => new(tags, [], []);

    public async ValueTask DisposeAsync()
    {
        foreach (var kit in _kits) await kit.DisposeAsync();
        ClearPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        if (_persistence.Schema is { } schema)
        {
            await using var c = new NpgsqlConnection(_persistence.ConnectionString);
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE";
            await cmd.ExecuteNonQueryAsync();
        }
    }
}

/// <summary>
/// Simulated agents: each round every device checks in with its installed version and, when told to upgrade,
/// reports completion or a failure (decided by <see cref="Fails"/>), exactly as the gateway would forward them.
/// </summary>
public sealed class Fleet(RolloutHarness harness, IReadOnlyList<string> ids)
{
    // Short, like a real agent's request timeout: a request to a node that just died must not stall the whole fleet.
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(3);

    private readonly Dictionary<string, long> _installed = ids.ToDictionary(i => i, _ => 1L);

    /// <summary>Devices whose upgrades fail (may be changed between rounds).</summary>
    public HashSet<string> Fails { get; } = [];

    public long Installed(string id) => _installed[id];

    public async Task Round()
    {
        var results = await Task.WhenAll(_installed.Keys.ToList().Select(async id =>
        {
            var d = await harness.Devices.Ask<CheckInDecision>(
                new CheckIn(id, "acme", _installed[id], "d" + _installed[id], null, null, null, [], null, DateTimeOffset.UtcNow), RequestTimeout);
            if (d.Action != Orchestrator.Messages.Protocol.UpdateAction.Upgrade) return (id, (long?)null);
            if (Fails.Contains(id))
            {
                await harness.Devices.Ask<object>(new ReportFailure(id, d.TargetVersionId!.Value, WorkPhase.Download, "connection reset", 1, DateTimeOffset.UtcNow), RequestTimeout);
                return (id, null);
            }
            await harness.Devices.Ask<DeviceCommandAccepted>(new ReportCompletion(id, d.TargetVersionId!.Value, "d" + d.TargetVersionId, DateTimeOffset.UtcNow), RequestTimeout);
            return (id, d.TargetVersionId);
        }));
        foreach (var (id, v) in results)
            if (v is { } version) _installed[id] = version;
    }

    public void Add(string id) => _installed[id] = 1;

    /// <summary>Runs rounds until <paramref name="stop"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            // A round fails while the node restarts; the agents simply try again, as real ones do.
            try { await Round(); } catch (Exception) when (!stop.IsCancellationRequested) { } catch (Exception) { return; }
            try { await Task.Delay(40, stop); } catch (OperationCanceledException) { return; }
        }
    }
}
