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
    // The parser before it read spans (Split, Trim, substrings): the span parser must accept and refuse exactly what it did, with the same reason.
    private static bool ParseWithStrings(string parameter, out DeviceRequestAuthorization auth, out string error)
    {
        auth = default;
        string? device = null, seq = null, ts = null, sig = null;
        foreach (var raw in parameter.Split(','))
        {
            var part = raw.Trim();
            var eq = part.IndexOf('=');
            if (eq <= 0) { error = $"'{(part.Length <= 32 ? part : part[..32] + "...")}' is not name=value"; return false; }
            var name = part[..eq];
            var value = part[(eq + 1)..];
            ref string? slot = ref device;
            switch (name)
            {
                case "device": slot = ref device; break;
                case "seq": slot = ref seq; break;
                case "ts": slot = ref ts; break;
                case "sig": slot = ref sig; break;
                default: error = $"unknown parameter '{(name.Length <= 32 ? name : name[..32] + "...")}' (expected device, seq, ts, sig)"; return false;
            }
            if (slot is not null) { error = $"parameter '{name}' appears twice"; return false; }
            slot = value;
        }
        if (device is null || seq is null || ts is null || sig is null) { error = "device, seq, ts and sig are all required"; return false; }
        if (!long.TryParse(seq, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s) || s < 1) { error = "seq must be a decimal integer >= 1"; return false; }
        if (!long.TryParse(ts, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var t) || t < 1) { error = "ts must be the signing time in Unix seconds"; return false; }
        if (sig.Length is 0 or > 128) { error = "sig must be the base64url HMAC-SHA256 (43 characters)"; return false; }
        auth = new DeviceRequestAuthorization(device, s, t, sig);
        error = "";
        return true;
    }

    [Theory]
    [InlineData("device=d, seq=1, ts=2, sig=x", "")]
    [InlineData("  sig=x ,ts=2,\tseq=1 , device=d-1  ", "")]
    [InlineData("device=, seq=1, ts=2, sig=x", "")]
    [InlineData("device=d, seq=1, ts=2", "device, seq, ts and sig are all required")]
    [InlineData("device=d, seq=0, ts=2, sig=x", "seq must be a decimal integer >= 1")]
    [InlineData("device=d, seq=-1, ts=2, sig=x", "seq must be a decimal integer >= 1")]
    [InlineData("device=d, seq=+1, ts=2, sig=x", "seq must be a decimal integer >= 1")]
    [InlineData("device=d, seq=1 0, ts=2, sig=x", "seq must be a decimal integer >= 1")]
    [InlineData("device=d, seq=99999999999999999999, ts=2, sig=x", "seq must be a decimal integer >= 1")]
    [InlineData("device=d, seq=1, ts=abc, sig=x", "ts must be the signing time in Unix seconds")]
    [InlineData("device=d, seq=1, ts=0, sig=x", "ts must be the signing time in Unix seconds")]
    [InlineData("device=d, seq=1, ts=2, sig=", "sig must be the base64url HMAC-SHA256 (43 characters)")]
    [InlineData("device=d, device=e, seq=1, ts=2, sig=x", "parameter 'device' appears twice")]
    [InlineData("device=d, seq=1, seq=1, ts=2, sig=x", "parameter 'seq' appears twice")]
    [InlineData("ts=1, device=d, seq=1, ts=2, sig=x", "parameter 'ts' appears twice")]
    [InlineData("device=d, seq=1, ts=2, sig=x, sig=y", "parameter 'sig' appears twice")]
    [InlineData("device=d, seq=1, ts=2, sig=x, extra=1", "unknown parameter 'extra' (expected device, seq, ts, sig)")]
    [InlineData("Device=d, seq=1, ts=2, sig=x", "unknown parameter 'Device' (expected device, seq, ts, sig)")]
    [InlineData("device=d, seq=1, ts=2, sig=x, abcdefghijklmnopqrstuvwxyz0123456789=1", "unknown parameter 'abcdefghijklmnopqrstuvwxyz012345...' (expected device, seq, ts, sig)")]
    [InlineData("garbage", "'garbage' is not name=value")]
    [InlineData("", "'' is not name=value")]
    [InlineData("device=d,, seq=1, ts=2, sig=x", "'' is not name=value")]
    [InlineData("device=d, seq=1, ts=2, sig=x,", "'' is not name=value")]
    [InlineData("=d, seq=1", "'=d' is not name=value")]
    [InlineData("device=d, seq=1, ts=2, sig=x, this part has no equals sign and is long", "'this part has no equals sign and...' is not name=value")]
    public void Every_malformed_parameter_is_refused_with_its_own_reason_as_the_string_parser_did(string parameter, string error)
    {
        var ok = DeviceRequestSignature.TryParse(parameter, out var auth, out var why);
        Assert.Equal(error, why);
        Assert.Equal(error == "", ok);
        Assert.Equal(ParseWithStrings(parameter, out var expected, out var expectedWhy), ok);
        Assert.Equal(expectedWhy, why);
        Assert.Equal(expected, auth);
    }

    [Fact]
    public void A_long_signature_is_refused_unparsed()
    {
        Assert.False(DeviceRequestSignature.TryParse("device=d, seq=1, ts=2, sig=" + new string('A', 129), out _, out var why));
        Assert.Equal("sig must be the base64url HMAC-SHA256 (43 characters)", why);
        Assert.True(DeviceRequestSignature.TryParse("device=d, seq=1, ts=2, sig=" + new string('A', 128), out _, out _));
    }

    [Theory]
    [InlineData("POST", "/v1/devices/d/check-in", "d")]
    [InlineData("post", "/v1/devices/d%20x/check-in?a=b&c=%C3%A9", "dev.1_x-y")]
    [InlineData("GeT", "/v1/store/\u00e9t\u00e9/\U0001F600", "d")]
    public void The_canonical_HMAC_written_from_spans_is_the_HMAC_of_the_canonical_string(string method, string path, string device)
    {
        var key = DeviceRequestSignature.DeriveRequestKey("s3cret");
        foreach (var (seq, ts) in new[] { (1L, 2L), (long.MaxValue, 1_700_000_000L), (-5L, 0L) })
        {
            var hash = DeviceRequestSignature.BodyHash("{}"u8);
            var expected = DeviceRequestSignature.Compute(key, DeviceRequestSignature.Canonical(method, path, device, seq, ts, hash));
            var mac = new byte[32];
            DeviceRequestSignature.Compute(key, method, path, device, seq, ts, hash, mac);
            Assert.Equal(expected, mac);
            // A method longer than the stack buffer, and a path longer than the canonical's stack buffer.
            var longMethod = new string('m', 40);
            var longPath = "/" + new string('\u00e9', 600);
            DeviceRequestSignature.Compute(key, longMethod, longPath, device, seq, ts, hash, mac);
            Assert.Equal(DeviceRequestSignature.Compute(key, DeviceRequestSignature.Canonical(longMethod, longPath, device, seq, ts, hash)), mac);
        }
    }

    [Fact]
    public void The_signature_verifies_in_base64url_with_or_without_padding_and_is_refused_otherwise()
    {
        var key = DeviceRequestSignature.DeriveRequestKey("s3cret");
        var hash = DeviceRequestSignature.BodyHash([]);
        Assert.True(DeviceRequestSignature.TryParse(DeviceRequestSignature.Sign(key, "GET", "/v1/store/x", "dev-1", 42, 1_700_000_000, []), out var auth, out _));
        Assert.Equal(43, auth.Signature.Length);
        var standard = auth.Signature.Replace('-', '+').Replace('_', '/');
        foreach (var ok in new[] { auth.Signature, auth.Signature + "=", standard, standard + "=" })
            Assert.True(DeviceRequestSignature.Verify(key, auth with { Signature = ok }, "GET", "/v1/store/x", hash), ok);
        foreach (var bad in new[] { auth.Signature[..42], auth.Signature + "A", auth.Signature + "==", "!" + auth.Signature[1..], (auth.Signature[0] == 'A' ? "B" : "A") + auth.Signature[1..] })
            Assert.False(DeviceRequestSignature.Verify(key, auth with { Signature = bad }, "GET", "/v1/store/x", hash), bad);
    }
}
