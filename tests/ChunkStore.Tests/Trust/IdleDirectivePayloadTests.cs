using System.Text;
using Orchestrator.ChunkStore.Trust;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.ChunkStore.Tests.Trust;

/// <summary>
/// The idle directive written straight as UTF-8 is, byte for byte, the payload the <see cref="Directive"/> record's
/// generated serializer writes for the same values (escaped characters, non-ASCII, dates with and without fractions and
/// offsets, large and negative numbers), and it parses back to that record.
/// </summary>
public sealed class IdleDirectivePayloadTests
{
    public static TheoryData<string, string, string, long> Values => new()
    {
        { "dev-000042", "acme", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 7 },
        { "dev+1<&>'\"\\/", "pro\u00e9duct\u2028", "n\u00f6nce\ud83d\ude00\t\n", 0 },
        { "d", "p", "-", long.MaxValue },
        { "x", "y", "z", -1 },
    };

    [Theory]
    [MemberData(nameof(Values))]
    public void The_idle_payload_is_the_records_bytes(string deviceId, string product, string nonce, long floor)
    {
        DateTimeOffset[] instants =
        [
            new(2026, 12, 6, 5, 0, 0, TimeSpan.Zero),
            new DateTimeOffset(2026, 12, 6, 5, 0, 0, TimeSpan.Zero).AddTicks(1234567),
            new DateTimeOffset(2026, 12, 6, 5, 0, 0, TimeSpan.FromHours(2)).AddTicks(10),
            DateTimeOffset.UtcNow,
        ];
        foreach (var issued in instants)
        {
            var expires = issued.AddMinutes(10.5);
            var record = new Directive(1, "directive", deviceId, product, nonce, issued, expires, UpdateAction.None, null, null, null, null, null, floor, null, null);
            var written = IdleDirectivePayload.Write(deviceId, product, nonce, issued, expires, floor);
            Assert.Equal(Encoding.UTF8.GetString(record.ToPayload()), Encoding.UTF8.GetString(written));
            Assert.Equal(record.ToPayload(), written);
            Assert.Equal(record, Directive.Parse(written));
        }
    }

    [Fact]
    public void A_long_value_after_a_short_one_is_written_whole()
    {
        var now = DateTimeOffset.UtcNow;
        var longNonce = new string('n', 100_000);
        _ = IdleDirectivePayload.Write("d", "p", "short", now, now, 1);
        var record = new Directive(1, "directive", "d", "p", longNonce, now, now, UpdateAction.None, null, null, null, null, null, 1, null, null);
        Assert.Equal(record.ToPayload(), IdleDirectivePayload.Write("d", "p", longNonce, now, now, 1));
        Assert.Equal(new Directive(1, "directive", "d", "p", "s", now, now, UpdateAction.None, null, null, null, null, null, 1, null, null).ToPayload(),
            IdleDirectivePayload.Write("d", "p", "s", now, now, 1));
    }
}
