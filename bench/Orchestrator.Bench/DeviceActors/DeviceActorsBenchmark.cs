using System.Diagnostics;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Data.Sqlite;
using Npgsql;
using Orchestrator.CommandLine;
using Orchestrator.DeviceActors;
using Orchestrator.DeviceActors.Hosting;
using Orchestrator.DeviceActors.Persistence;
using Orchestrator.DeviceActors.Sharding;
using Orchestrator.Messages.Devices;
using Orchestrator.Messages.Protocol;
using Orchestrator.Messages.Serialization;

namespace Orchestrator.Bench.DeviceActors;

/// <summary>
/// `device-actors` mode: events persisted per second by sharded device actors (single-node cluster, the node's real
/// path: region -> shard -> DeviceActor -> journal), then recovery time of all devices in a fresh actor system, for
/// DeviceJournal and for Akka.Persistence.Sql's write journal in Csv tag mode, each side by side with raw batched
/// inserts of the rows that journal writes into the same database in the same run.
/// </summary>
public static class DeviceActorsBenchmark
{
    private sealed record Options(int Devices, int EventsPerDevice, int InFlight, string[] Backends, string[] Journals, string? Postgres, string Output, int? BatchSize, int WarmupDevices);

    private sealed record Result(string Backend, string Journal, int Devices, long Events, double RawSeconds, double ActorSeconds, double RecoverySeconds, long JournalRows, double FirstContactSeconds, double RawCpuUs, double ActorCpuUs);

    /// <summary>Runs the benchmark; returns the process exit code.</summary>
    public static async Task<int> Run(string[] args)
    {
        var o = Parse(args);
        var results = new List<Result>();
        foreach (var backend in o.Backends)
            foreach (var journal in o.Journals)
            {
                Console.WriteLine($"== {backend}, {journal} journal: {o.Devices} devices x {o.EventsPerDevice} events");
                results.Add(await RunBackend(backend, journal, o));
            }
        var md = Report(o, results);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(o.Output))!);
        var tmp = o.Output + ".tmp";
        await File.WriteAllTextAsync(tmp, md);
        File.Move(tmp, o.Output, overwrite: true);
        Console.WriteLine(md);
        return 0;
    }

    private static readonly CommandGrammar Grammar = new("Orchestrator.Bench device-actors",
    [
        SwitchSpec.Value("devices", "N"), SwitchSpec.Value("events-per-device", "E"), SwitchSpec.Value("in-flight", "K"),
        SwitchSpec.Value("backend", "sqlite,postgres"), SwitchSpec.Value("journals", "device,plugin"), SwitchSpec.Value("postgres", "CONNSTR"),
        SwitchSpec.Value("out", "FILE"), SwitchSpec.Value("batch-size", "ROWS"), SwitchSpec.Value("warmup-devices", "W"),
    ]);

    private static Options Parse(string[] args)
    {
        var o = Grammar.Parse(args);
        var devices = o.Int("devices", 100_000, 1);
        var events = o.Int("events-per-device", 3, 1);
        var inFlight = o.Int("in-flight", 1_000, 1);
        var backends = o.Optional("backend")?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? ["sqlite", "postgres"];
        var journals = o.Optional("journals")?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? [DeviceJournalSide, PluginSide];
        var pg = o.Optional("postgres") ?? Environment.GetEnvironmentVariable("ORCH_TEST_POSTGRES") ?? Environment.GetEnvironmentVariable("PG_CONNECTION_STRING");
        var output = o.Optional("out") ?? "bench/results/device-actors.md";
        int? batchSize = o.OptionalLong("batch-size", 1, int.MaxValue) is { } rows ? (int)rows : null; // null: DevicePersistenceOptions' default
        var warmup = o.Int("warmup-devices", 1_000, 0);
        if (backends.Contains("postgres") && pg is null)
            throw new ArgumentException("PostgreSQL backend needs --postgres, ORCH_TEST_POSTGRES or PG_CONNECTION_STRING (or --backend sqlite).");
        if (journals.FirstOrDefault(j => j is not DeviceJournalSide and not PluginSide) is { } unknown)
            throw new ArgumentException($"Unknown journal '{unknown}' in --journals: use '{DeviceJournalSide}' (DeviceJournal) and/or '{PluginSide}' (Akka.Persistence.Sql, tag-write-mode = Csv).");
        return new Options(devices, events, inFlight, backends, journals, pg, output, batchSize, warmup);
    }

    /// <summary>The actors persist through <c>DeviceJournal</c> (the node's journal).</summary>
    private const string DeviceJournalSide = "device";

    /// <summary>
    /// The actors persist through Akka.Persistence.Sql's own write journal in its fast mode: <c>tag-write-mode = Csv</c>
    /// (tags in the journal row's <c>tags</c> column, no tag table: the column the registry's read journal reads), the
    /// same number of connections (<c>parallelism</c>) and rows per transaction (<c>batch-size</c>) as DeviceJournal.
    /// </summary>
    private const string PluginSide = "plugin";

    private static async Task<Result> RunBackend(string backend, string journal, Options o)
    {
        string? tempDir = null;
        DevicePersistenceOptions options;
        if (backend == "sqlite")
        {
            tempDir = Path.Combine(Path.GetTempPath(), "orch-bench-" + Guid.NewGuid().ToString("N"));
            options = DevicePersistenceOptions.Sqlite(Path.Combine(tempDir, "devices.db"));
        }
        else
        {
            options = DevicePersistenceOptions.PostgreSql(o.Postgres!, "bench_" + Guid.NewGuid().ToString("N")[..16]);
        }
        options = options with { BatchSize = o.BatchSize ?? options.BatchSize };
        await options.PrepareDatabase();
        try
        {
            var ids = Enumerable.Range(0, o.Devices).Select(i => $"bench-{i:D7}").ToArray();
            var totalEvents = (long)o.Devices * o.EventsPerDevice;
            // Warm-up devices write WarmupEvents rows on each side before its clock starts, so neither timed phase
            // includes JIT tiering of its write path. They are other devices than the timed ones.
            var warmIds = Enumerable.Range(0, o.WarmupDevices).Select(i => $"warm-{i:D6}").ToArray();

            SettleHeap();
            var rawCpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var rawSeconds = await RawInserts(options, journal, warmIds, ids, o.EventsPerDevice);
            var rawCpuUs = (Process.GetCurrentProcess().TotalProcessorTime - rawCpu0).TotalMicroseconds / totalEvents;
            Console.WriteLine($"   raw batched inserts: {totalEvents} rows in {rawSeconds:F1}s = {totalEvents / rawSeconds:F0}/s, {rawCpuUs:F0} us CPU/row");

            double actorSeconds, actorCpuUs, firstContactSeconds;
            SqlStats.InstallIfRequested();
            await using (var node = await Node.Start(options, journal))
            {
                await ForAll(warmIds, o.InFlight, async id =>
                {
                    for (var e = 0; e < WarmupEvents; e++)
                        await node.Region.Ask<CheckInDecision>(CheckInFor(id, e), TimeSpan.FromMinutes(2));
                });
                // Create (and recover, empty) every actor first, so the timed phase measures persisting events only.
                var first = Stopwatch.StartNew();
                await ForAll(ids, o.InFlight, id => node.Region.Ask<DeviceState>(new GetDeviceState(id), TimeSpan.FromMinutes(2)));
                firstContactSeconds = first.Elapsed.TotalSeconds;
                SqlStats.Reset();
                SettleHeap();
                if (int.TryParse(Environment.GetEnvironmentVariable("ORCH_BENCH_PAUSE_SECONDS"), out var pause))
                {
                    Console.WriteLine($"   pausing {pause}s before the timed phase (pid {Environment.ProcessId}), e.g. for dotnet-gcdump");
                    await Task.Delay(TimeSpan.FromSeconds(pause));
                }
                var gc0 = (G0: GC.CollectionCount(0), G1: GC.CollectionCount(1), G2: GC.CollectionCount(2), Pause: GC.GetTotalPauseDuration(), Allocated: GC.GetTotalAllocatedBytes(precise: false));
                using var sampler = AllocationSampler.StartIfRequested();
                sampler?.Begin();
                var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                var sw = Stopwatch.StartNew();
                await ForAll(ids, o.InFlight, async id =>
                {
                    for (var e = 0; e < o.EventsPerDevice; e++)
                        await node.Region.Ask<CheckInDecision>(CheckInFor(id, e), TimeSpan.FromMinutes(2));
                });
                actorSeconds = sw.Elapsed.TotalSeconds;
                actorCpuUs = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMicroseconds / totalEvents;
                SqlStats.Print("timed write phase", totalEvents);
                sampler?.Print("timed write phase", totalEvents);
                Console.WriteLine($"   GC in the timed phase: gen0 {GC.CollectionCount(0) - gc0.G0}, gen1 {GC.CollectionCount(1) - gc0.G1}, " +
                                  $"gen2 {GC.CollectionCount(2) - gc0.G2}, pause {(GC.GetTotalPauseDuration() - gc0.Pause).TotalMilliseconds:F0} ms, " +
                                  $"allocated {(GC.GetTotalAllocatedBytes(precise: false) - gc0.Allocated) / totalEvents} B/event, " +
                                  $"heap {GC.GetGCMemoryInfo().HeapSizeBytes / 1048576} MiB");
                if (Environment.GetEnvironmentVariable("ORCH_BENCH_GC_DETAIL") == "1")
                {
                    var last = GC.GetGCMemoryInfo(GCKind.Ephemeral);
                    Console.WriteLine($"   last ephemeral GC #{last.Index} gen{last.Generation}: pause {string.Join('+', last.PauseDurations.ToArray().Select(d => d.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture)))} ms, " +
                                      $"promoted {last.PromotedBytes / 1048576} MiB, generations (before->after MiB) " +
                                      string.Join(", ", last.GenerationInfo.ToArray().Select(g => $"{g.SizeBeforeBytes / 1048576}->{g.SizeAfterBytes / 1048576}")));
                }
            }
            Console.WriteLine($"   first contact (empty recovery) of {o.Devices} devices: {firstContactSeconds:F1}s");
            Console.WriteLine($"   device actors: {totalEvents} events in {actorSeconds:F1}s = {totalEvents / actorSeconds:F0}/s, {actorCpuUs:F0} us CPU/event");

            double recoverySeconds;
            await using (var node = await Node.Start(options, journal))
            {
                var sw = Stopwatch.StartNew();
                var wrong = 0;
                await ForAll(ids, o.InFlight, async id =>
                {
                    var s = await node.Region.Ask<DeviceState>(new GetDeviceState(id), TimeSpan.FromMinutes(2));
                    if (s.EventCount != o.EventsPerDevice) Interlocked.Increment(ref wrong);
                });
                recoverySeconds = sw.Elapsed.TotalSeconds;
                if (wrong > 0) throw new InvalidOperationException($"{wrong} devices recovered with the wrong event count");
            }
            Console.WriteLine($"   recovery: {o.Devices} devices in {recoverySeconds:F1}s");
            var rows = await Count(options, "journal");
            var expectedRows = totalEvents + (long)warmIds.Length * WarmupEvents;
            if (rows != expectedRows) throw new InvalidOperationException($"journal holds {rows} rows, expected {expectedRows}");
            return new Result(backend, journal, o.Devices, totalEvents, rawSeconds, actorSeconds, recoverySeconds, rows, firstContactSeconds, rawCpuUs, actorCpuUs);
        }
        finally
        {
            if (tempDir is not null)
            {
                SqliteConnection.ClearAllPools();
                Directory.Delete(tempDir, recursive: true);
            }
            else
            {
                await using var c = new NpgsqlConnection(options.ConnectionString);
                await c.OpenAsync();
                await using var cmd = new NpgsqlCommand($"DROP SCHEMA \"{options.Schema}\" CASCADE", c);
                await cmd.ExecuteNonQueryAsync();
            }
        }
    }

    private const int WarmupEvents = 5;

    private static CheckIn CheckInFor(string id, int e) =>
        new(id, "acme", 3 + e, $"sha256:{e:x64}", null, null, null, [], "1.0.0", DateTimeOffset.UtcNow);

    // inFlight workers pull the next id, instead of one waiting task per id: 100k tasks parked on a semaphore were
    // ~40 MB that survived into gen2 during the timed phase and made the collector, not the actors, the measured cost.
    private static async Task ForAll(string[] ids, int inFlight, Func<string, Task> work)
    {
        var next = -1;
        var workers = Enumerable.Range(0, Math.Min(inFlight, ids.Length)).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < ids.Length) await work(ids[i]);
        }).ToList();
        await Task.WhenAll(workers);
    }

    // Both sides start their timed phase from a collected heap, so neither pays for the other's (or setup's) garbage.
    private static void SettleHeap()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    /// <summary>
    /// The peer of each journal: the rows that journal writes (one journal row with the same serialized payload and the
    /// <c>tags</c> column <c>;device;</c>; for DeviceJournal also one tag row per event, for the plugin in Csv mode none),
    /// in batches of 1000 per transaction, through ADO.NET (Microsoft.Data.Sqlite / Npgsql) on as many connections as
    /// the journal writes with (<see cref="DevicePersistenceOptions.Parallelism"/>), into tables with the device journal's
    /// columns, keys and indexes (the plugin's, plus our <c>tags (tag, ordering_id)</c>).
    /// </summary>
    private static async Task<double> RawInserts(DevicePersistenceOptions options, string journal, string[] warmIds, string[] ids, int eventsPerDevice)
    {
        var sample = new DeviceCheckedIn("acme", 3, $"sha256:{0:x64}", "1.0.0", UpdateAction.None, null, DateTimeOffset.UtcNow);
        var payload = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(sample, OrchestratorSerializer.JsonOptions);
        var tagRows = journal == DeviceJournalSide;
        const int batch = 1000;
        static (string Pid, long Seq)[][] Batches(string[] ids, int events) =>
            ids.SelectMany(id => Enumerable.Range(1, events).Select(seq => (Pid: DeviceActor.PersistenceIdPrefix + id, Seq: (long)seq))).Chunk(batch).ToArray();
        var phases = new[] { (Timed: false, Batches: Batches(warmIds, WarmupEvents)), (Timed: true, Batches: Batches(ids, eventsPerDevice)) };
        var sqlite = options.Backend == PersistenceBackend.Sqlite;
        await using (var setup = Connect(options))
        {
            await setup.OpenAsync();
            var (blob, boolean, text, identity) = sqlite
                ? ("BLOB", "INTEGER", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT")
                : ("BYTEA", "BOOLEAN", "VARCHAR(255)", "BIGSERIAL PRIMARY KEY");
            await Exec(setup, $"""
                {(sqlite ? "" : $"SET search_path TO \"{options.Schema}\";")}
                CREATE TABLE raw_journal (ordering {identity}, deleted {boolean} NOT NULL, persistence_id {text} NOT NULL,
                  sequence_number BIGINT NOT NULL, created BIGINT NOT NULL, tags VARCHAR(100), message {blob} NOT NULL, identifier INT,
                  manifest VARCHAR(500) NOT NULL, writer_uuid VARCHAR(128), UNIQUE (persistence_id, sequence_number));
                CREATE TABLE raw_tags (ordering_id BIGINT NOT NULL, tag VARCHAR(64) NOT NULL, persistence_id {text} NOT NULL,
                  sequence_nr BIGINT NOT NULL, PRIMARY KEY (ordering_id, tag));
                CREATE INDEX raw_journal_created_idx ON raw_journal (created);
                CREATE INDEX raw_journal_sequence_number_idx ON raw_journal (sequence_number);
                CREATE INDEX raw_tags_persistence_id_sequence_nr_idx ON raw_tags (persistence_id, sequence_nr);
                CREATE INDEX raw_tags_tag_idx ON raw_tags (tag);
                CREATE INDEX raw_tags_tag_ordering_idx ON raw_tags (tag, ordering_id);
                """);
        }
        var sw = new Stopwatch();
        foreach (var (timed, batches) in phases)
        {
            if (timed) sw.Start();
            // Connection k writes batches k, k + P, k + 2P, ...: P connections busy at once, as the journals' P writers.
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, options.Parallelism).Select(async _ =>
            {
                await using var c = Connect(options);
                await c.OpenAsync();
                int i;
                while ((i = Interlocked.Increment(ref next)) < batches.Length)
                {
                    if (c is SqliteConnection sc) await RawSqliteBatch(sc, batches[i], payload, tagRows);
                    else await RawPostgresBatch((NpgsqlConnection)c, options.Schema!, batches[i], payload, tagRows);
                }
            }));
        }
        return sw.Elapsed.TotalSeconds;
    }

    private static System.Data.Common.DbConnection Connect(DevicePersistenceOptions options) =>
        options.Backend == PersistenceBackend.Sqlite ? new SqliteConnection(options.ConnectionString) : new NpgsqlConnection(options.ConnectionString);

    // Prepared statements, one INSERT ... RETURNING per journal row and one tag insert per row.
    private static async Task RawSqliteBatch(SqliteConnection c, (string Pid, long Seq)[] chunk, byte[] payload, bool tagRows)
    {
        await using var tx = c.BeginTransaction();
        await using var j = c.CreateCommand();
        j.Transaction = tx;
        j.CommandText = "INSERT INTO raw_journal (deleted, persistence_id, sequence_number, created, tags, message, identifier, manifest, writer_uuid) " +
                        "VALUES (0, $p, $s, $c, ';device;', $m, 7131, 'DeviceCheckedIn.v1', 'w') RETURNING ordering";
        var p = j.Parameters.Add("$p", SqliteType.Text);
        var s = j.Parameters.Add("$s", SqliteType.Integer);
        var cr = j.Parameters.Add("$c", SqliteType.Integer);
        j.Parameters.AddWithValue("$m", payload);
        await using var t = c.CreateCommand();
        t.Transaction = tx;
        t.CommandText = "INSERT INTO raw_tags (ordering_id, tag, persistence_id, sequence_nr) VALUES ($o, 'device', $p, $s)";
        var to = t.Parameters.Add("$o", SqliteType.Integer);
        var tp = t.Parameters.Add("$p", SqliteType.Text);
        var ts = t.Parameters.Add("$s", SqliteType.Integer);
        foreach (var (pid, seq) in chunk)
        {
            p.Value = pid; s.Value = seq; cr.Value = DateTime.UtcNow.Ticks;
            var ordering = (long)(await j.ExecuteScalarAsync())!;
            if (!tagRows) continue;
            to.Value = ordering; tp.Value = pid; ts.Value = seq;
            await t.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
    }

    // One multi-row INSERT for the journal rows (returning the orderings), one for their tag rows, one transaction.
    private static async Task RawPostgresBatch(NpgsqlConnection c, string schema, (string Pid, long Seq)[] chunk, byte[] payload, bool tagRows)
    {
        await using var tx = await c.BeginTransactionAsync();
        var sql = new StringBuilder($"INSERT INTO \"{schema}\".raw_journal (deleted, persistence_id, sequence_number, created, tags, message, identifier, manifest, writer_uuid) VALUES ");
        await using var j = new NpgsqlCommand { Connection = c, Transaction = tx };
        for (var i = 0; i < chunk.Length; i++)
        {
            sql.Append(i == 0 ? "" : ",").Append(CultureInfo.InvariantCulture, $"(false,@p{i},@s{i},@c,';device;',@m,7131,'DeviceCheckedIn.v1','w')");
            j.Parameters.AddWithValue($"p{i}", chunk[i].Pid);
            j.Parameters.AddWithValue($"s{i}", chunk[i].Seq);
        }
        j.Parameters.AddWithValue("c", DateTime.UtcNow.Ticks);
        j.Parameters.AddWithValue("m", payload);
        j.CommandText = sql.Append(" RETURNING ordering, persistence_id, sequence_number").ToString();
        var stored = new List<(long, string, long)>(chunk.Length);
        await using (var r = await j.ExecuteReaderAsync())
            while (await r.ReadAsync()) stored.Add((r.GetInt64(0), r.GetString(1), r.GetInt64(2)));
        if (tagRows)
        {
            var tsql = new StringBuilder($"INSERT INTO \"{schema}\".raw_tags (ordering_id, tag, persistence_id, sequence_nr) VALUES ");
            await using var t = new NpgsqlCommand { Connection = c, Transaction = tx };
            for (var i = 0; i < stored.Count; i++)
            {
                tsql.Append(i == 0 ? "" : ",").Append(CultureInfo.InvariantCulture, $"(@o{i},'device',@p{i},@s{i})");
                t.Parameters.AddWithValue($"o{i}", stored[i].Item1);
                t.Parameters.AddWithValue($"p{i}", stored[i].Item2);
                t.Parameters.AddWithValue($"s{i}", stored[i].Item3);
            }
            t.CommandText = tsql.ToString();
            await t.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
    }

    private static async Task Exec(System.Data.Common.DbConnection c, string sql)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<long> Count(DevicePersistenceOptions options, string table)
    {
        if (options.Backend == PersistenceBackend.Sqlite)
        {
            await using var c = new SqliteConnection(options.ConnectionString);
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT COUNT(*) FROM {table}";
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        await using var pc = new NpgsqlConnection(options.ConnectionString);
        await pc.OpenAsync();
        await using var pcmd = new NpgsqlCommand($"SELECT COUNT(*) FROM \"{options.Schema}\".{table}", pc);
        return (long)(await pcmd.ExecuteScalarAsync())!;
    }

    private static string Report(Options o, List<Result> results)
    {
        var b = new StringBuilder();
        b.AppendLine("# Device actors: persistence throughput and recovery");
        b.AppendLine();
        b.AppendLine($"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores (machine shared with other builds; " +
                     $"load average at end: {LoadAverage()}). Command: `dotnet run -c Release --project bench/Orchestrator.Bench -- device-actors " +
                     $"--devices {o.Devices} --events-per-device {o.EventsPerDevice} --in-flight {o.InFlight} --backend {string.Join(',', o.Backends)}" +
                     $"{(o.BatchSize is null ? "" : $" --batch-size {o.BatchSize}")} --warmup-devices {o.WarmupDevices}`.");
        b.AppendLine();
        b.AppendLine("- **journals**: `device` = `DeviceJournal` (our write journal: the plugin's `journal` rows with the `tags` column plus one " +
                     "`tags` row per tag, the writes of all actors grouped into one transaction per batch); `plugin` = Akka.Persistence.Sql's own write " +
                     "journal with `tag-write-mode = Csv` (journal rows with the `tags` column, no tag rows: the column the registry's read journal " +
                     "reads). Both with the same connections (`parallelism` = `DevicePersistenceOptions.Parallelism`: SQLite 1, PostgreSQL 3) and " +
                     "the same rows per transaction (`batch-size` = `DevicePersistenceOptions.BatchSize`); the plugin's circuit-breaker call timeout " +
                     "is raised to 120 s (DeviceJournal has none). Each journal runs on a fresh database.");
        b.AppendLine("- **raw** (one per journal, same database, same run): the rows that journal writes (same serialized `DeviceCheckedIn.v1` payload, " +
                     "`tags` column; tag rows only on the `device` side), batches of 1000 per transaction through ADO.NET (SQLite: prepared statements; " +
                     "PostgreSQL: multi-row INSERT) on as many connections as the journal, into tables with the device journal's columns, keys and indexes.");
        b.AppendLine("- **actors**: single-node cluster, `AddDeviceActors` (100 shards), every device a `DeviceActor`; " +
                     $"each device persists {o.EventsPerDevice} `CheckIn` events sequentially (ask, reply after the write), {o.InFlight} asks in flight. " +
                     "Actors are created and recovered (empty) before the clock starts.");
        b.AppendLine($"- **both sides** start their clock warm and clean: {o.WarmupDevices:N0} other devices write {WarmupEvents} events each first " +
                     "(raw: the same rows), so neither timed phase includes JIT tiering of its write path, and a full blocking GC runs before each " +
                     $"timed phase. Asks come from {o.InFlight} workers, each sending its next device's check-ins after the previous reply.");
        b.AppendLine("- **recovery**: a fresh actor system on the same database; time until every device answered `GetDeviceState` with the right event count " +
                     "(snapshot lookup by the plugin's snapshot store, highest sequence number and replay by the journal under test).");
        b.AppendLine();
        b.AppendLine("| backend | journal | devices | events | raw rows/s | actor events/s | actor / raw | first contact (empty) | recovery of all devices | devices recovered/s | CPU/row raw | CPU/event actors |");
        b.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            var raw = r.Events / r.RawSeconds;
            var act = r.Events / r.ActorSeconds;
            b.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Backend} | {r.Journal} | {r.Devices:N0} | {r.Events:N0} | {raw:N0} | {act:N0} | {act / raw:P0} | {r.FirstContactSeconds:N1} s | {r.RecoverySeconds:N1} s | {r.Devices / r.RecoverySeconds:N0} | {r.RawCpuUs:N0} µs | {r.ActorCpuUs:N0} µs |"));
        }
        b.AppendLine();
        foreach (var g in results.GroupBy(r => r.Backend))
        {
            var device = g.FirstOrDefault(r => r.Journal == DeviceJournalSide);
            var plugin = g.FirstOrDefault(r => r.Journal == PluginSide);
            if (device is null || plugin is null) continue;
            b.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"- {g.Key}: plugin / DeviceJournal events/s = {(plugin.Events / plugin.ActorSeconds) / (device.Events / device.ActorSeconds):P0}, " +
                $"recovery time plugin / DeviceJournal = {plugin.RecoverySeconds / device.RecoverySeconds:P0}."));
        }
        b.AppendLine();
        b.AppendLine("Target: actor events/s >= 50% of raw.");
        return b.ToString();
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "n/a"; }
    }

    /// <summary>
    /// Diagnostic (ORCH_BENCH_SQL_STATS=1, off in recorded runs: tracing costs CPU): counts the plugin's linq2db
    /// operations during the timed phase (snapshot store and read journal; DeviceJournal does not use linq2db).
    /// </summary>
    private static class SqlStats
    {
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> Counts = new();
        private static bool _on;

        public static void InstallIfRequested()
        {
            if (_on || Environment.GetEnvironmentVariable("ORCH_BENCH_SQL_STATS") != "1") return;
            _on = true;
            LinqToDB.Data.DataConnection.TurnTraceSwitchOn(System.Diagnostics.TraceLevel.Info);
            LinqToDB.Data.DataConnection.DefaultOnTraceConnection = info =>
            {
                if (info.TraceInfoStep != LinqToDB.Data.TraceInfoStep.AfterExecute) return;
                var sql = info.Operation is LinqToDB.Data.TraceOperation.BeginTransaction or LinqToDB.Data.TraceOperation.CommitTransaction
                    ? "" : " " + new string((info.CommandText ?? "").TrimStart().Take(40).Select(c => char.IsWhiteSpace(c) ? ' ' : c).ToArray());
                Counts.AddOrUpdate(info.Operation + sql, 1, (_, v) => v + 1);
            };
        }

        public static void Reset() => Counts.Clear();

        public static void Print(string phase, long events)
        {
            if (!_on) return;
            Console.WriteLine($"   linq2db operations in the {phase} ({events} events):");
            foreach (var (k, v) in Counts.OrderByDescending(kv => kv.Value).Take(12))
                Console.WriteLine($"     {v,8}  {k}");
        }
    }

    /// <summary>A single-node cluster with the device region, wired by the node's own extension (<c>AddDeviceActors</c>).</summary>
    private sealed class Node : IAsyncDisposable
    {
        private readonly IHost _host;

        private Node(IHost host, ActorSystem system, IActorRef region) { _host = host; System = system; Region = region; }

        public ActorSystem System { get; }
        public IActorRef Region { get; }

        public static async Task<Node> Start(DevicePersistenceOptions options, string journal)
        {
            var host = new HostBuilder().ConfigureServices(services => services.AddAkka("bench", builder =>
            {
                builder.AddDeviceActors(new DeviceActorsHostingOptions(options, HostsRegion: true, DeviceActorSettings.Default));
                builder.AddHocon($$"""
                    akka.loglevel = WARNING
                    akka.actor.provider = cluster
                    akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
                    akka.cluster.roles = ["{{DeviceSharding.Role}}"]
                    akka.cluster.sharding.distributed-data.durable.keys = []
                    """, HoconAddMode.Prepend);
                if (journal == PluginSide)
                    builder.AddHocon(string.Create(CultureInfo.InvariantCulture, $$"""
                        akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                        akka.persistence.journal.sql {
                          tag-write-mode = Csv
                          parallelism = {{options.Parallelism}}
                          batch-size = {{options.BatchSize}}
                          db-round-trip-max-batch-size = {{options.BatchSize}}
                          # DeviceJournal has no call timeout: under load the plugin's default 10 s breaker would fail
                          # writes DeviceJournal completes, so the measurement would end in errors instead of a rate.
                          circuit-breaker.call-timeout = 120s
                        }
                        """), HoconAddMode.Prepend);
                // For exploring settings without a rebuild, e.g. ORCH_BENCH_HOCON='akka.persistence.journal.device.parallelism = 2'.
                if (Environment.GetEnvironmentVariable("ORCH_BENCH_HOCON") is { Length: > 0 } extra)
                    builder.AddHocon(extra, HoconAddMode.Prepend);
            })).Build();
            await host.StartAsync();
            var system = host.Services.GetRequiredService<ActorSystem>();
            var cluster = Cluster.Get(system);
            await cluster.JoinAsync(cluster.SelfAddress);
            var region = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<DeviceShardRegion>();
            return new Node(host, system, region);
        }

        public async ValueTask DisposeAsync()
        {
            await _host.StopAsync();
            _host.Dispose();
        }
    }
}
