using Orchestrator.Messages.Protocol;

namespace Orchestrator.Messages.Tests.Protocol;

/// <summary>The protocol v2 signature: a fixed vector (other implementations, e.g. bench/gateway/sign.py, must match it) and the parser.</summary>
public sealed class DeviceRequestSignatureTests
{
    [Fact]
    public void A_known_vector_signs_to_the_documented_value()
    {
        var header = DeviceRequestSignature.Sign(DeviceRequestSignature.DeriveRequestKey("s3cret"), "GET", "/v1/store/x", "dev-1", 42, 1_700_000_000, []);
        // Computed independently by bench/gateway/sign.py (HKDF and HMAC from Python's standard library).
        Assert.Equal("device=dev-1, seq=42, ts=1700000000, sig=uMiIiO-qWaJNz8nF7qIOYWNEj_jmrQob3P1WtvCtqK0", header);
    }

    [Fact]
    public void Every_signed_part_changes_the_signature()
    {
        var key = DeviceRequestSignature.DeriveRequestKey("s3cret");
        var body = "{}"u8.ToArray();
        Assert.True(DeviceRequestSignature.TryParse(DeviceRequestSignature.Sign(key, "POST", "/v1/devices/d/failure", "d", 5, 100, body), out var auth, out _));
        Assert.True(DeviceRequestSignature.Verify(key, auth, "POST", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash(body)));
        Assert.False(DeviceRequestSignature.Verify(key, auth, "PUT", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash(body)));
        Assert.False(DeviceRequestSignature.Verify(key, auth, "POST", "/v1/devices/d/progress", DeviceRequestSignature.BodyHash(body)));
        Assert.False(DeviceRequestSignature.Verify(key, auth, "POST", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash("{ }"u8)));
        Assert.False(DeviceRequestSignature.Verify(key, auth with { Sequence = 6 }, "POST", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash(body)));
        Assert.False(DeviceRequestSignature.Verify(key, auth with { Timestamp = 101 }, "POST", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash(body)));
        Assert.False(DeviceRequestSignature.Verify(DeviceRequestSignature.DeriveRequestKey("other"), auth, "POST", "/v1/devices/d/failure", DeviceRequestSignature.BodyHash(body)));
    }

    [Theory]
    [InlineData("device=d, seq=1, ts=2", "required")]
    [InlineData("device=d, seq=0, ts=2, sig=x", "seq")]
    [InlineData("device=d, seq=-1, ts=2, sig=x", "seq")]
    [InlineData("device=d, seq=1, ts=abc, sig=x", "ts")]
    [InlineData("device=d, device=e, seq=1, ts=2, sig=x", "twice")]
    [InlineData("device=d, seq=1, ts=2, sig=x, extra=1", "unknown parameter")]
    [InlineData("garbage", "name=value")]
    public void Malformed_parameters_are_refused_with_a_reason(string parameter, string reason)
    {
        Assert.False(DeviceRequestSignature.TryParse(parameter, out _, out var error));
        Assert.Contains(reason, error);
    }
}
