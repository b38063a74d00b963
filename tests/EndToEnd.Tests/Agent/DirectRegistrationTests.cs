using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Orchestrator.DeviceAgent.Tests.Support;
using Orchestrator.EndToEnd.Tests.Agent.Support;
using Orchestrator.EndToEnd.Tests.Pacing;
using Orchestrator.Messages.Devices;
using Xunit.Abstractions;

namespace Orchestrator.EndToEnd.Tests.Agent;

/// <summary>
/// Bulk registration of devices that have no journal writes their <c>DeviceRegistered</c> straight through the node's
/// journal: through a real node and the real CLI, the journal holds exactly one such event per device, no device actor
/// is started for them, the registry and a real agent see the registration, and devices with a journal or a live actor
/// still go through their actors (re-runs, mixed batches, a device of another product refusing the whole batch).
/// </summary>
public sealed class DirectRegistrationTests(ITestOutputHelper output)
{
    private sealed record JournalRow(string PersistenceId, long SequenceNr, string Manifest);

    // The node's journal database: its SQLite file, or the PostgreSQL database it was started on.
    private static async Task<System.Data.Common.DbConnection> OpenJournalAsync(NodeUnderTest node, string? postgres)
    {
        System.Data.Common.DbConnection db = postgres is null
            ? new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = node.JournalFile, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString())
            : new Npgsql.NpgsqlConnection(postgres);
        await db.OpenAsync();
        return db;
    }

    private static async Task<List<JournalRow>> JournalRows(NodeUnderTest node, string? postgres, string prefix)
    {
        await using var db = await OpenJournalAsync(node, postgres);
        await using var cmd = db.CreateCommand();
        cmd.CommandText = $"SELECT persistence_id, sequence_number, manifest FROM journal WHERE persistence_id LIKE 'device-{prefix}%' ORDER BY persistence_id, sequence_number";
        var rows = new List<JournalRow>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) rows.Add(new JournalRow(r.GetString(0), r.GetInt64(1), r.GetString(2)));
        return rows;
    }

    private static async Task<long> TagRows(NodeUnderTest node, string? postgres, string prefix)
    {
        await using var db = await OpenJournalAsync(node, postgres);
        await using var cmd = db.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM tags WHERE persistence_id LIKE 'device-{prefix}%'";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    private static async Task<(NodeUnderTest Node, string? Postgres)> StartNodeAsync(bool postgres, IDictionary<string, string?>? extra = null)
    {
        // Unheard actors would stay live for a minute: any actor the registration started is still listed when checked.
        var settings = new Dictionary<string, string?>(extra ?? new Dictionary<string, string?>()) { ["Devices:UnheardPassivateAfter"] = "00:01:00" };
        string? database = null;
        if (postgres)
        {
            (_, database) = await Cluster.Support.LocalCluster.FreshDatabaseAsync(Cluster.Support.PostgresClusterFactAttribute.RequiredConnectionString(), "orch_direct_");
            settings["Database:Provider"] = "postgresql";
            settings["Database:ConnectionString"] = database;
        }
        return (await NodeUnderTest.StartAsync(settings), database);
    }

    private static async Task<(HttpStatusCode Status, JsonNode Body)> RegisterBatchAsync(NodeUnderTest node, IEnumerable<string> ids, string product, params string[] tags)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "admin/v1/devices/register-batch")
        {
            Content = JsonContent.Create(new { devices = ids.Select(id => new { deviceId = id, product, tags }).ToArray() }),
        };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", NodeUnderTest.OperateToken);
        using var res = await node.Http.SendAsync(req);
        return (res.StatusCode, JsonNode.Parse(await res.Content.ReadAsStringAsync())!);
    }

    private static (int Devices, int Registered, int Unchanged) Counts(JsonNode body) =>
        (body["devices"]!.GetValue<int>(), body["registered"]!.GetValue<int>(), body["unchanged"]!.GetValue<int>());

    [Fact]
    public Task New_devices_are_registered_through_the_journal_without_actors_and_a_real_agent_installs_what_they_are_assigned() =>
        NewDevicesAsync(postgres: false);

    [Cluster.Support.PostgresClusterFact]
    public Task On_postgresql_new_devices_are_registered_through_the_journal_without_actors_and_a_real_agent_installs() =>
        NewDevicesAsync(postgres: true);

    [Fact]
    public Task Re_runs_mixed_batches_live_actors_and_a_device_of_another_product_take_the_actor_path() => MixedAsync(postgres: false);

    [Cluster.Support.PostgresClusterFact]
    public Task On_postgresql_re_runs_mixed_batches_live_actors_and_a_device_of_another_product_take_the_actor_path() => MixedAsync(postgres: true);

    private async Task NewDevicesAsync(bool postgres)
    {
        var (started, pg) = await StartNodeAsync(postgres);
        await using var node = started;
        using var store = new TestStore(node.StoreRoot);
        var v1 = store.Publish("1.0", Releases.V1());
        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "fleet.csv");

        var run = await OrchProcess.OkAsync(node, output, "device", "provision", "--count", "1200", "--prefix", "fleet-", "--out", file,
            "--product", "acme", "--tags", "lot1,eu");
        Assert.Contains("Registered them for acme with tags lot1,eu: 1200 registered", run.Output);
        Assert.Empty(await node.LiveDeviceIdsAsync());

        // Exactly one DeviceRegistered per device, at sequence number 1, tagged as an actor's event is (device + product tags).
        var rows = await JournalRows(node, pg, "fleet-");
        Assert.Equal(1200, rows.Count);
        Assert.All(rows, r => Assert.Equal((1L, "DeviceRegistered.v1"), (r.SequenceNr, r.Manifest)));
        Assert.Equal(1200, rows.Select(r => r.PersistenceId).Distinct().Count());
        Assert.True(await TagRows(node, pg, "fleet-") >= 1200);

        // The registry projects them as it does actor-written events.
        var listed = await UntilAsync(async () => await node.GetJsonAsync("admin/v1/devices?tag=lot1&limit=2000"),
            v => v["devices"]!.AsArray().Count == 1200);
        Assert.Equal(1200, listed["devices"]!.AsArray().Count);
        Assert.Empty(await node.LiveDeviceIdsAsync());

        // A real agent with one of the credentials checks in under its registered product and installs what it is assigned.
        var secrets = File.ReadAllLines(file).Skip(1).Select(l => l.Split(',')).ToDictionary(p => p[0], p => p[1]);
        await node.AssignAsync("fleet-0777", "acme", v1.Version, v1.VersionId, v1.ManifestPath);
        using var device = new TestDevice(node.BaseUrl, credential: secrets["fleet-0777"], deviceId: "fleet-0777",
            contentKey: store.ContentKey.ToBytes(), trustRoot: store.SigningKey.PublicKey.ToBytes());
        var agent = await AgentProcess.RunAsync(["run", "--config", device.Config.SourcePath!, "--no-client"]);
        output.WriteLine(agent.Output + agent.Error);
        Assert.Equal(0, agent.ExitCode);
        Assert.Equal(v1.InventoryDigest, Releases.ClientDigest(device));
        var state = await node.StateAsync("fleet-0777");
        Assert.Equal(("acme", DeviceStatus.Completed, v1.VersionId), (state.Product, state.Status, state.InstalledVersionId));
        Assert.Equal(["lot1", "eu"], state.Tags);
        Assert.Equal(["DeviceRegistered", "TargetAssigned"], (await node.JournalAsync("fleet-0777")).Take(2));
    }

    private async Task MixedAsync(bool postgres)
    {
        var (started, pg) = await StartNodeAsync(postgres);
        await using var node = started;
        var first = Enumerable.Range(1, 300).Select(i => $"mix-{i:000}").ToList();
        var (status, body) = await RegisterBatchAsync(node, first, "acme", "lot2");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((300, 300, 0), Counts(body));
        Assert.Empty(await node.LiveDeviceIdsAsync());

        // The same batch again changes nothing: every device has a journal now, so each actor is asked and writes nothing.
        (status, body) = await RegisterBatchAsync(node, first, "acme", "lot2");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((300, 0, 300), Counts(body));
        Assert.Equal(300, (await JournalRows(node, pg, "mix-")).Count);

        // New and already-registered devices in one batch, plus a device whose actor is live with no events (it was asked
        // for its state): the live one registers through its actor, which then holds the registration.
        Assert.Null((await node.StateAsync("mix-live")).Product);
        Assert.Contains("mix-live", await node.LiveDeviceIdsAsync());
        var mixed = first.Take(100).Concat(Enumerable.Range(301, 50).Select(i => $"mix-{i:000}")).Append("mix-live").ToList();
        (status, body) = await RegisterBatchAsync(node, mixed, "acme", "lot2");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((151, 51, 100), Counts(body));
        var rows = await JournalRows(node, pg, "mix-");
        Assert.Equal(351, rows.Count);
        Assert.All(rows, r => Assert.Equal((1L, "DeviceRegistered.v1"), (r.SequenceNr, r.Manifest)));
        Assert.Equal("acme", (await node.StateAsync("mix-live")).Product);
        Assert.Equal("acme", (await node.StateAsync("mix-320")).Product);

        // A device registered under another product refuses the whole batch; none of the batch's new devices is written.
        (status, _) = await RegisterBatchAsync(node, ["other-1"], "other");
        Assert.Equal(HttpStatusCode.OK, status);
        var refusedBatch = Enumerable.Range(1, 40).Select(i => $"new-{i:00}").Append("other-1").ToList();
        (status, body) = await RegisterBatchAsync(node, refusedBatch, "acme", "lot2");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_registration", body["error"]!.GetValue<string>());
        Assert.Contains("devices[40] ('other-1') runs product 'other', not 'acme'", body["message"]!.GetValue<string>());
        Assert.Empty(await JournalRows(node, pg, "new-"));
        Assert.Equal("other", (await node.StateAsync("other-1")).Product);
    }

    private static async Task<JsonNode> UntilAsync(Func<Task<JsonNode>> read, Func<JsonNode, bool> condition, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode value;
        do
        {
            value = await read();
            if (condition(value)) return value;
            await Task.Delay(250);
        } while (DateTime.UtcNow < deadline);
        return value;
    }
}
