using System.Text.Json;
using Orchestrator.Messages.Protocol;
using Orchestrator.Node.Auth;
using Orchestrator.Node.Gateway;
using Orchestrator.Node.Trust;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// The check-in route reads and writes its bodies with the protocol's generated JSON metadata and splits the
/// Authorization header itself; these pin that both say exactly what the reflection-based web settings and
/// <c>AuthenticationHeaderValue</c> said, so the wire format and the refusals are unchanged.
/// </summary>
public sealed class CheckInWireFormatTests
{
    public static TheoryData<CheckInResponse> Responses() => new()
    {
        new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null, null, false, "{\"payload\":\"eyJ+/=\",\"signatures\":[]}"),
        new CheckInResponse(UpdateAction.Upgrade, "2.0", 7, "products/acme/2.0/manifest.json", null,
            new DownloadGrant(1 << 30, 16 << 20, new DateTimeOffset(2026, 12, 5, 14, 0, 0, TimeSpan.Zero)), 60,
            ["http://mirror.example/"], "products/acme/deltas/1.0-2.0.json", true, "{\"payload\":\"x\"}"),
        new CheckInResponse(UpdateAction.Repair, "1.0", 3, "m", ["a/b", "c<&>\u00e9"], null, 300, [], null),
    };

    [Theory]
    [MemberData(nameof(Responses))]
    public void The_answer_serializes_to_the_same_bytes_as_the_web_settings(CheckInResponse response)
    {
        var generated = JsonSerializer.SerializeToUtf8Bytes(response, ProtocolJsonContext.Default.CheckInResponse);
        var reflected = JsonSerializer.SerializeToUtf8Bytes(response, Node.Gateway.HttpProblems.Json);
        Assert.Equal(System.Text.Encoding.UTF8.GetString(reflected), System.Text.Encoding.UTF8.GetString(generated));
    }

    private static readonly byte[] Base64Specials = [0xfb, 0xff, 0xbf, 0x00]; // "+/+/AA==" in base64

    public static TheoryData<CheckInResponse, SignedDirective?> Answers() => new()
    {
        { new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null),
            new SignedDirective("{\"a\":\"+/<>\"}"u8.ToArray(), "0123", Base64Specials, [Base64Specials, [1, 2, 3]], 3, 1, Base64Specials) },
        { new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null, null, false, "{\"payload\":\"eyJ+/=\",\"signatures\":[]}"), null },
        { new CheckInResponse(UpdateAction.Upgrade, "2.0", 7, "products/acme/2.0/manifest.json", null,
            new DownloadGrant(1 << 30, 16 << 20, new DateTimeOffset(2026, 12, 5, 14, 0, 0, TimeSpan.Zero)), 60,
            ["http://mirror.example/"], "products/acme/deltas/1.0-2.0.json", true, null, ["m.from-6.zst", "m.json.zst"]),
            new SignedDirective(System.Text.Encoding.UTF8.GetBytes("{\"payload\":\"x\u00e9<>&'\\\"\"}"), "k\u00e9y", [1, 2, 3]) },
        { new CheckInResponse(UpdateAction.Repair, "1.0", 3, "m", ["a/b", "c<&>\u00e9"], null, 300, [], null), null },
        { new CheckInResponse(UpdateAction.Repair, "1.0", 3, "m", [], null, 300, null, null, false, null, []), new SignedDirective([], "", []) },
        // Every ASCII character in the envelope (its key id, escaped once by the envelope's writer), each escaped again by
        // the answer writer's own table, between runs it copies whole.
        { new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null), new SignedDirective("{}"u8.ToArray(), AllAscii(), Base64Specials) },
        { new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null), new SignedDirective("\"+\""u8.ToArray(), "\"+\"", Base64Specials) },
    };

    private static string AllAscii() => new(Enumerable.Range(0, 128).Select(b => (char)b).ToArray());

    [Theory]
    [MemberData(nameof(Answers))]
    public void The_answer_writer_writes_the_generated_serializers_bytes(CheckInResponse response, SignedDirective? directive)
    {
        var answer = new CheckInAnswer(response, directive);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer)) CheckInAnswerWriter.Write(writer, answer);
        var expected = JsonSerializer.SerializeToUtf8Bytes(answer.ToResponse(), ProtocolJsonContext.Default.CheckInResponse);
        Assert.Equal(System.Text.Encoding.UTF8.GetString(expected), System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    [Fact]
    public void The_answer_writer_knows_every_property_of_the_generated_metadata_in_its_order()
    {
        var info = ProtocolJsonContext.Default.CheckInResponse;
        Assert.Equal(info.Properties.OrderBy(p => p.Order).Select(p => p.Name), CheckInAnswerWriter.PropertyNames);
    }

    [Fact]
    public void The_idle_answer_omits_its_null_fields_and_the_agents_parser_reads_them_as_null()
    {
        var idle = new CheckInResponse(UpdateAction.None, null, null, null, null, null, 300, null, null, false, "{}");
        var json = System.Text.Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(idle, ProtocolJsonContext.Default.CheckInResponse));
        Assert.Equal("{\"action\":\"None\",\"nextCheckInSeconds\":300,\"mirrorsFirst\":false,\"directive\":\"{}\"}", json);
        // The agent reads the answer with this generated metadata (HttpGatewayClient).
        Assert.Equal(idle, JsonSerializer.Deserialize(json, ProtocolJsonContext.Default.CheckInResponse));
        var explicitNulls = "{\"action\":\"None\",\"targetVersion\":null,\"targetVersionId\":null,\"manifestPath\":null,\"repairFiles\":null,\"grant\":null," +
            "\"nextCheckInSeconds\":300,\"mirrors\":null,\"deltaManifestPath\":null,\"mirrorsFirst\":false,\"directive\":\"{}\",\"compactManifests\":null}";
        Assert.Equal(idle, JsonSerializer.Deserialize(explicitNulls, ProtocolJsonContext.Default.CheckInResponse));
    }

    [Theory]
    [InlineData("{\"product\":\"acme\",\"installedVersionId\":3,\"inventoryDigest\":\"d\",\"agentVersion\":\"1.0\",\"nonce\":\"00ff\",\"stale\":true,\"attributes\":{\"site\":\"x\"},\"files\":[{\"path\":\"a\",\"sha256\":\"b\"}]}")]
    [InlineData("{\"Product\":\"acme\",\"INSTALLEDVERSIONID\":\"4\",\"inventoryDigest\":\"d\",\"unknown\":[1,2]}")]
    public void The_request_parses_to_the_same_value_as_the_web_settings(string json)
    {
        var generated = JsonSerializer.Deserialize(json, ProtocolJsonContext.Default.CheckInRequest)!;
        var reflected = JsonSerializer.Deserialize<CheckInRequest>(json, Node.Gateway.HttpProblems.Json)!;
        Assert.Equal(JsonSerializer.Serialize(reflected, Node.Gateway.HttpProblems.Json), JsonSerializer.Serialize(generated, Node.Gateway.HttpProblems.Json));
    }

    [Theory]
    [InlineData("Orch-HMAC-SHA256 device=a, seq=1, ts=2, sig=x")]
    [InlineData("  orch-hmac-sha256   device=a,seq=1  ")]
    [InlineData("Basic YWJjOmRlZg==")]
    [InlineData("Bearer\tabc")]
    [InlineData("Orch-HMAC-SHA256")]
    [InlineData("Orch-HMAC-SHA256   ")]
    [InlineData(" device=a, seq=1")]
    [InlineData("Orch/HMAC device=a")]
    [InlineData("Orch\"HMAC device=a")]
    [InlineData("")]
    public void The_authorization_header_splits_as_AuthenticationHeaderValue_parses_it(string header)
    {
        var expected = System.Net.Http.Headers.AuthenticationHeaderValue.TryParse(header, out var parsed) && parsed.Parameter is not null;
        Assert.Equal(expected, DeviceAuthentication.SplitScheme(header, out var scheme, out var parameter));
        if (!expected) return;
        Assert.Equal(parsed!.Scheme, scheme.ToString());
        Assert.Equal(parsed.Parameter, parameter.ToString());
    }
}
