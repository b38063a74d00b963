using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Orchestrator.Messages.Serialization;

namespace Orchestrator.Messages.Tests.Serialization;

public sealed class OrchestratorSerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("ser", BootstrapSetup.Create().And(OrchestratorSerialization.Setup));

    public void Dispose() => _system.Dispose();

    public static TheoryData<string> SampleNames()
    {
        var data = new TheoryData<string>();
        foreach (var s in MessageSamples.All) data.Add(s.GetType().Name);
        return data;
    }

    private static IOrchestratorMessage Sample(string name) => MessageSamples.All.Single(s => s.GetType().Name == name);

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void Every_sample_round_trips_through_the_bound_serializer(string typeName)
    {
        var sample = Sample(typeName);
        DeepEquality.AssertNoDefaults(sample);
        var serializer = _system.Serialization.FindSerializerFor(sample);
        var typed = Assert.IsType<OrchestratorSerializer>(serializer);
        var manifest = typed.Manifest(sample);
        Assert.EndsWith(".v1", manifest);
        var bytes = typed.ToBinary(sample);
        var back = typed.FromBinary(bytes, manifest);
        DeepEquality.AssertEqual(sample, back);
    }

    [Fact]
    public void Every_message_type_in_the_assembly_has_a_manifest_and_a_sample()
    {
        var messageTypes = typeof(IOrchestratorMessage).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IOrchestratorMessage).IsAssignableFrom(t))
            .ToList();
        Assert.NotEmpty(messageTypes);
        var sampled = MessageSamples.All.Select(s => s.GetType()).ToHashSet();
        foreach (var t in messageTypes)
        {
            Assert.True(OrchestratorSerializer.Manifests.ContainsKey(t), $"{t.Name} has no manifest in OrchestratorSerializer");
            Assert.True(sampled.Contains(t), $"{t.Name} has no round-trip sample in MessageSamples");
        }
        Assert.Equal(OrchestratorSerializer.Manifests.Count, OrchestratorSerializer.Manifests.Values.Distinct().Count());
        Assert.Equal(messageTypes.Count, OrchestratorSerializer.Manifests.Count);
    }

    [Fact]
    public void Unknown_manifest_is_a_clear_serialization_exception()
    {
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var e = Assert.Throws<SerializationException>(() => serializer.FromBinary("{}"u8.ToArray(), "DeviceCheckedIn.v9"));
        Assert.Contains("Unknown manifest 'DeviceCheckedIn.v9'", e.Message);
    }

    [Fact]
    public void Invalid_payload_fails_validation_on_deserialization()
    {
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var json = Encoding.UTF8.GetBytes("""{"deviceId":"../etc/passwd"}""");
        var e = Assert.Throws<SerializationException>(() => serializer.FromBinary(json, "GetDeviceState.v1"));
        Assert.Contains("Invalid device id", e.Message);
    }

    [Fact]
    public void V1_payloads_written_before_the_rollout_bandwidth_field_read_with_no_cap()
    {
        // Journals and snapshots hold TargetAssigned/DeviceState written without the field; remote nodes may still send
        // AssignTarget/CheckInDecision without it. All read as "no cap" under the same v1 manifests.
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var assigned = Assert.IsType<Orchestrator.Messages.Devices.TargetAssigned>(serializer.FromBinary(Encoding.UTF8.GetBytes(
            """{"target":{"product":"acme","version":"2.0","versionId":2,"manifestPath":"m.json","rolloutId":"r1"},"at":"1970-01-01T00:00:00+00:00"}"""),
            "TargetAssigned.v1"));
        Assert.Equal(("r1", 0L), (assigned.Target.RolloutId, assigned.Target.BandwidthBytesPerSecond));
        var assign = Assert.IsType<Orchestrator.Messages.Devices.AssignTarget>(serializer.FromBinary(Encoding.UTF8.GetBytes(
            """{"deviceId":"d1","product":"acme","version":"2.0","versionId":2,"manifestPath":"m.json","rolloutId":"r1"}"""), "AssignTarget.v1"));
        Assert.Equal(0, assign.BandwidthBytesPerSecond);
        var decision = Assert.IsType<Orchestrator.Messages.Devices.CheckInDecision>(serializer.FromBinary(Encoding.UTF8.GetBytes(
            """{"deviceId":"d1","action":"Upgrade","targetVersion":"2.0","targetVersionId":2,"manifestPath":"m.json","repairFiles":[],"status":"UpgradeAssigned"}"""),
            "CheckInDecision.v1"));
        Assert.Equal((null, 0L), (decision.RolloutId, decision.BandwidthBytesPerSecond));
    }

    [Fact]
    public void V1_rollout_events_written_before_the_device_timeout_read_as_wait_indefinitely()
    {
        // Rollout journals and snapshots hold specs and device records written without the fields.
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var sample = MessageSamples.All.OfType<Orchestrator.Messages.Rollouts.RolloutSnapshot>().Single();
        var json = System.Text.Json.Nodes.JsonNode.Parse(serializer.ToBinary(sample))!.AsObject();
        Assert.True(json["spec"]!.AsObject().Remove("deviceTimeoutSeconds"));
        foreach (var d in json["devices"]!.AsArray()) Assert.True(d!.AsObject().Remove("assignedAt"));
        var old = Assert.IsType<Orchestrator.Messages.Rollouts.RolloutSnapshot>(
            serializer.FromBinary(Encoding.UTF8.GetBytes(json.ToJsonString()), "RolloutSnapshot.v1"));
        Assert.Equal(0, old.Spec.DeviceTimeoutSeconds);
        Assert.All(old.Devices, d => Assert.Null(d.AssignedAt));
    }

    [Fact]
    public void V1_payloads_written_before_channels_read_as_stable_and_without_channel_information()
    {
        // Rollout journals hold specs without a channel, and nodes of the previous build send check-ins and decisions without
        // the channel fields: they read as the default channel, "no channel information" and "not a downgrade".
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var sample = MessageSamples.All.OfType<Orchestrator.Messages.Rollouts.RolloutCreated>().Single();
        var json = System.Text.Json.Nodes.JsonNode.Parse(serializer.ToBinary(sample))!.AsObject();
        Assert.True(json["spec"]!.AsObject().Remove("channel"));
        var old = Assert.IsType<Orchestrator.Messages.Rollouts.RolloutCreated>(serializer.FromBinary(Encoding.UTF8.GetBytes(json.ToJsonString()), "RolloutCreated.v1"));
        Assert.Equal("stable", old.Spec.Channel);
        var checkIn = Assert.IsType<Orchestrator.Messages.Devices.CheckIn>(serializer.FromBinary(Encoding.UTF8.GetBytes(
            """{"deviceId":"d1","product":"acme","installedVersionId":0,"inventoryDigest":"x","differingFiles":[],"timestamp":"1970-01-01T00:00:00+00:00"}"""),
            "CheckIn.v1"));
        Assert.Null(checkIn.Channels);
        var decision = Assert.IsType<Orchestrator.Messages.Devices.CheckInDecision>(serializer.FromBinary(Encoding.UTF8.GetBytes(
            """{"deviceId":"d1","action":"Upgrade","targetVersion":"2.0","targetVersionId":2,"manifestPath":"m.json","repairFiles":[],"status":"UpgradeAssigned"}"""),
            "CheckInDecision.v1"));
        Assert.Equal((false, (string?)null), (decision.Downgrade, decision.Source));
    }

    [Fact]
    public void Persisted_format_is_stable_json_with_enum_names()
    {
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        var json = Encoding.UTF8.GetString(serializer.ToBinary(new Orchestrator.Messages.Devices.WorkCompleted(5, "d", Orchestrator.Messages.Devices.WorkKind.Repair, DateTimeOffset.UnixEpoch)));
        Assert.Equal("""{"installedVersionId":5,"inventoryDigest":"d","kind":"Repair","at":"1970-01-01T00:00:00+00:00","requestSequence":0}""", json);
    }

    [Fact]
    public void V1_payloads_written_before_request_sequences_read_as_unsequenced()
    {
        // Journals and snapshots hold device events and states written without requestSequence (protocol v1), and a
        // node not yet upgraded sends commands without it: each reads as 0 ("no sequence", never a replay) under v1.
        var serializer = (OrchestratorSerializer)_system.Serialization.FindSerializerForType(typeof(IOrchestratorMessage));
        foreach (var sample in MessageSamples.All.Where(m => m.GetType().GetProperty("RequestSequence") is not null
                     || m is Orchestrator.Messages.Devices.DeviceState))
        {
            var json = System.Text.Json.Nodes.JsonNode.Parse(serializer.ToBinary(sample))!.AsObject();
            Assert.True(json.Remove("requestSequence") || json.Remove("lastRequestSequence"), sample.GetType().Name);
            var old = serializer.FromBinary(Encoding.UTF8.GetBytes(json.ToJsonString()), serializer.Manifest(sample));
            var value = old.GetType().GetProperty("RequestSequence")?.GetValue(old) ?? old.GetType().GetProperty("LastRequestSequence")!.GetValue(old);
            Assert.Equal(0L, value);
        }
        Assert.Equal(11, MessageSamples.All.Count(m => m.GetType().GetProperty("RequestSequence") is not null || m is Orchestrator.Messages.Devices.DeviceState));
    }
}
