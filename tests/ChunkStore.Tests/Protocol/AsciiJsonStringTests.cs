using System.Buffers;
using System.Text;
using System.Text.Json;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Tests.Protocol;

/// <summary>
/// <see cref="AsciiJsonString"/> writes the bytes Utf8JsonWriter writes for the same string, as a property and as an
/// array element, for every ASCII byte, runs of them, and values beyond ASCII (the writer's own path).
/// </summary>
public sealed class AsciiJsonStringTests
{
    private static string Written(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer)) write(writer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void AssertSameAsWriter(byte[] value)
    {
        Assert.Equal(
            Written(w => { w.WriteStartObject(); w.WriteNumber("n"u8, 1); w.WriteString("v"u8, value); w.WriteEndObject(); }),
            Written(w => { w.WriteStartObject(); w.WriteNumber("n"u8, 1); AsciiJsonString.Write(w, "v"u8, value); w.WriteEndObject(); }));
        Assert.Equal(
            Written(w => { w.WriteStartArray(); w.WriteStringValue(value); w.WriteStringValue(value); w.WriteEndArray(); }),
            Written(w => { w.WriteStartArray(); AsciiJsonString.Write(w, default, value); AsciiJsonString.Write(w, default, value); w.WriteEndArray(); }));
    }

    [Fact]
    public void Every_ascii_byte_alone_and_between_runs_is_written_as_the_writer_writes_it()
    {
        for (var b = 0; b < 128; b++)
        {
            AssertSameAsWriter([(byte)b]);
            AssertSameAsWriter([(byte)'a', (byte)b, (byte)'z', (byte)b, (byte)b]);
        }
        AssertSameAsWriter([]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)] // escaped, beyond the stack buffer
    [InlineData(5000)]
    public void Json_and_base64_of_any_length_are_the_writers_bytes(int repeat)
    {
        var json = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"payload\":\"eyJ+/=\",\"sig\":\"a+b\\\\c<&>'`\"}", repeat)));
        AssertSameAsWriter(json);
        var random = new byte[repeat * 7];
        new Random(repeat).NextBytes(random);
        AssertSameAsWriter(Encoding.ASCII.GetBytes(Convert.ToBase64String(random)));
    }

    [Fact]
    public void A_value_beyond_ascii_is_the_writers_bytes()
    {
        AssertSameAsWriter(Encoding.UTF8.GetBytes("{\"x\":\"caf\u00e9 \u2603 +\"}"));
        AssertSameAsWriter([0x80, (byte)'"', (byte)'a']); // not UTF-8 either: written as the writer writes it
    }
}
