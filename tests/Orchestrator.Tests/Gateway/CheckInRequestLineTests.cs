using System.Text;
using Orchestrator.Messages.Devices;
using Orchestrator.Node.Gateway;

namespace Orchestrator.Node.Tests.Gateway;

/// <summary>
/// The check-in route recognised in a connection's first bytes: only the exact request line an agent sends, with an id
/// the route would read as the same id; everything else goes on to HTTP unrecognised.
/// </summary>
public sealed class CheckInRequestLineTests
{
    [Theory]
    [InlineData("POST /v1/devices/dev-1/check-in HTTP/1.1\r\nHost: x\r\n\r\n", "dev-1")]
    [InlineData("POST /v1/devices/A.b_c:d-9/check-in HTTP/1.0\r\n", "A.b_c:d-9")]
    [InlineData("POST /v1/devices/7/check-in HTTP/1.1\r\n", "7")]
    public void An_agents_check_in_line_gives_its_device_id(string head, string id)
    {
        Assert.True(CheckInRequestLine.TryDeviceId(Encoding.ASCII.GetBytes(head), out var deviceId));
        Assert.Equal(id, Encoding.ASCII.GetString(deviceId));
        Assert.True(DeviceIdRules.IsValid(id));
    }

    [Theory]
    [InlineData("GET /v1/devices/dev-1/check-in HTTP/1.1\r\n")] // another method
    [InlineData("post /v1/devices/dev-1/check-in HTTP/1.1\r\n")] // methods are case-sensitive; HTTP decides
    [InlineData("POST /v1/devices/dev-1/progress HTTP/1.1\r\n")] // another route
    [InlineData("POST /v1/Devices/dev-1/check-in HTTP/1.1\r\n")] // routing ignores case; this does not, HTTP decides
    [InlineData("POST /v1/devices/dev%2D1/check-in HTTP/1.1\r\n")] // escaped: the route would decode it
    [InlineData("POST /v1/devices/-dev/check-in HTTP/1.1\r\n")] // not a device id
    [InlineData("POST /v1/devices//check-in HTTP/1.1\r\n")]
    [InlineData("POST /v1/devices/dev-1/check-in?x=1 HTTP/1.1\r\n")] // a query
    [InlineData("POST /v1/devices/dev-1/check-in/x HTTP/1.1\r\n")]
    [InlineData("POST /v1/devices/dev-1/check-in HTTP/2.0\r\n")]
    [InlineData("POST /v1/devices/dev-1/check-in HTTP/1.1 x\r\n")]
    [InlineData("POST /v1/devices/dev-1/check-in HTTP/1.1")] // the line not complete yet
    [InlineData("POST /v1/devices/dev-1/check-in HTTP/1.1\n")]
    [InlineData("POST /v1/devices/dev-1/check-i")]
    [InlineData("")]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001")] // a TLS ClientHello
    public void Anything_else_is_not_recognised(string head) =>
        Assert.False(CheckInRequestLine.TryDeviceId(Encoding.Latin1.GetBytes(head), out _));

    [Fact]
    public void Ids_up_to_the_grammars_length_and_no_longer_and_no_byte_outside_it()
    {
        var longest = "d" + new string('x', 127);
        Assert.True(CheckInRequestLine.TryDeviceId(Encoding.ASCII.GetBytes($"POST /v1/devices/{longest}/check-in HTTP/1.1\r\n"), out var id));
        Assert.Equal(128, id.Length);
        Assert.True(Encoding.ASCII.GetBytes($"POST /v1/devices/{longest}/check-in HTTP/1.1\r\n").Length <= CheckInRequestLine.MaxLength);
        Assert.False(CheckInRequestLine.TryDeviceId(Encoding.ASCII.GetBytes($"POST /v1/devices/{longest}x/check-in HTTP/1.1\r\n"), out _));
        // Every byte the grammar refuses, in the id's second place, makes the line unrecognised.
        for (var b = 0; b < 256; b++)
        {
            var candidate = "d" + (char)b;
            var bytes = Encoding.Latin1.GetBytes($"POST /v1/devices/{candidate}/check-in HTTP/1.1\r\n");
            if (b == '/') continue; // ends the id: a different line
            Assert.Equal(DeviceIdRules.IsValid(candidate), CheckInRequestLine.TryDeviceId(bytes, out _));
        }
    }
}
