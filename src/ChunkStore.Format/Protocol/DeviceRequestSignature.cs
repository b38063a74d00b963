using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Messages.Protocol;

/// <summary>The parameters of an <c>Orch-HMAC-SHA256</c> Authorization header.</summary>
/// <param name="DeviceId">The device that signed.</param>
/// <param name="Sequence">The device's request sequence number (strictly increasing per device for check-in and reports).</param>
/// <param name="Timestamp">When the device signed, Unix seconds.</param>
/// <param name="Signature">HMAC-SHA256 over the canonical string, base64url without padding.</param>
public readonly record struct DeviceRequestAuthorization(string DeviceId, long Sequence, long Timestamp, string Signature);

/// <summary>
/// Protocol v2 device request authentication (docs/protocol.md, "Device credentials"): every device request carries
/// <c>Authorization: Orch-HMAC-SHA256 device=&lt;id&gt;, seq=&lt;n&gt;, ts=&lt;unix seconds&gt;, sig=&lt;base64url&gt;</c>,
/// an HMAC over a canonical string of method, path and query, device id, sequence, timestamp and the body's SHA-256.
/// The key is derived from the provisioned secret, so the secret itself never travels. One implementation serves the
/// agent (signing), the node (verifying) and the tests, so the three cannot disagree on the canonical form.
/// </summary>
public static class DeviceRequestSignature
{
    /// <summary>The HTTP authentication scheme name.</summary>
    public const string Scheme = "Orch-HMAC-SHA256";

    /// <summary>First line of the canonical string; a new canonical form gets a new prefix.</summary>
    public const string CanonicalPrefix = "ORCH-HMAC-SHA256-V2";

    /// <summary>HKDF info that separates the request key from any other use of the secret.</summary>
    private static readonly byte[] RequestKeyInfo = Encoding.UTF8.GetBytes("orchestrator/device-request-key/v2");

    /// <summary>SHA-256 of an empty body, lower-case hex (GET and HEAD requests).</summary>
    public const string EmptyBodySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// <summary>
    /// The per-device request key: HKDF-SHA256 of the secret. The node stores this key (it must recompute signatures),
    /// the device derives it from its sealed secret; the derivation is one-way, so the stored key does not reveal the secret.
    /// </summary>
    public static byte[] DeriveRequestKey(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret), 32, salt: [], info: RequestKeyInfo);
    }

    /// <summary>The string that is signed; every field on its own line, so no field can run into the next.</summary>
    /// <param name="method">HTTP method, upper case.</param>
    /// <param name="pathAndQuery">The request target exactly as sent: escaped path plus <c>?query</c> if any.</param>
    /// <param name="deviceId">The signing device.</param>
    /// <param name="sequence">The request sequence number.</param>
    /// <param name="timestamp">Unix seconds.</param>
    /// <param name="bodySha256Hex">Lower-case hex SHA-256 of the body bytes (of an empty body for GET/HEAD).</param>
    public static string Canonical(string method, string pathAndQuery, string deviceId, long sequence, long timestamp, string bodySha256Hex) =>
        string.Join('\n', CanonicalPrefix, method.ToUpperInvariant(), pathAndQuery, deviceId,
            sequence.ToString(CultureInfo.InvariantCulture), timestamp.ToString(CultureInfo.InvariantCulture), bodySha256Hex);

    /// <summary>HMAC-SHA256 of the canonical string under <paramref name="requestKey"/>.</summary>
    public static byte[] Compute(byte[] requestKey, string canonical) =>
        HMACSHA256.HashData(requestKey, Encoding.UTF8.GetBytes(canonical));

    /// <summary>
    /// HMAC-SHA256 under <paramref name="requestKey"/> of the UTF-8 of <see cref="Canonical"/> for these fields, written into
    /// <paramref name="mac"/> (32 bytes) without building the string.
    /// </summary>
    public static void Compute(byte[] requestKey, ReadOnlySpan<char> method, ReadOnlySpan<char> pathAndQuery, ReadOnlySpan<char> deviceId,
        long sequence, long timestamp, ReadOnlySpan<char> bodySha256Hex, Span<byte> mac)
    {
        // Each char is at most 3 UTF-8 bytes (a surrogate pair is 4 for 2 chars); a long is at most 20 characters.
        var max = CanonicalPrefix.Length + 6 + 3 * (method.Length + pathAndQuery.Length + deviceId.Length + bodySha256Hex.Length) + 2 * 20;
        byte[]? rented = null;
        var buffer = max <= 1024 ? stackalloc byte[1024] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var n = Encoding.ASCII.GetBytes(CanonicalPrefix, buffer);
            buffer[n++] = (byte)'\n';
            char[]? upperRented = null;
            var upper = method.Length <= 32 ? stackalloc char[32] : (upperRented = ArrayPool<char>.Shared.Rent(method.Length));
            var upperLength = method.ToUpperInvariant(upper);
            n += Encoding.UTF8.GetBytes(upper[..upperLength], buffer[n..]);
            if (upperRented is not null) ArrayPool<char>.Shared.Return(upperRented);
            buffer[n++] = (byte)'\n';
            n += Encoding.UTF8.GetBytes(pathAndQuery, buffer[n..]);
            buffer[n++] = (byte)'\n';
            n += Encoding.UTF8.GetBytes(deviceId, buffer[n..]);
            buffer[n++] = (byte)'\n';
            sequence.TryFormat(buffer[n..], out var w, default, CultureInfo.InvariantCulture);
            n += w;
            buffer[n++] = (byte)'\n';
            timestamp.TryFormat(buffer[n..], out w, default, CultureInfo.InvariantCulture);
            n += w;
            buffer[n++] = (byte)'\n';
            n += Encoding.UTF8.GetBytes(bodySha256Hex, buffer[n..]);
            HMACSHA256.HashData(requestKey, buffer[..n], mac);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Lower-case hex SHA-256 of a body.</summary>
    public static string BodyHash(ReadOnlySpan<byte> body) => Convert.ToHexStringLower(SHA256.HashData(body));

    /// <summary>Signs one request and returns the Authorization header's parameter (everything after the scheme).</summary>
    public static string Sign(byte[] requestKey, string method, string pathAndQuery, string deviceId, long sequence, long timestamp, ReadOnlySpan<byte> body)
    {
        Span<byte> mac = stackalloc byte[HashLength];
        Span<byte> hash = stackalloc byte[HashLength];
        Span<char> hex = stackalloc char[2 * HashLength];
        SHA256.HashData(body, hash);
        Convert.TryToHexStringLower(hash, hex, out _);
        Compute(requestKey, method, pathAndQuery, deviceId, sequence, timestamp, hex, mac);
        return Format(new DeviceRequestAuthorization(deviceId, sequence, timestamp, Base64Url(mac)));
    }

    /// <summary>The header parameter for <paramref name="auth"/>.</summary>
    public static string Format(DeviceRequestAuthorization auth) =>
        string.Create(CultureInfo.InvariantCulture, $"device={auth.DeviceId}, seq={auth.Sequence}, ts={auth.Timestamp}, sig={auth.Signature}");

    /// <inheritdoc cref="TryParse(ReadOnlySpan{char}, out DeviceRequestAuthorization, out string)"/>
    public static bool TryParse(string parameter, out DeviceRequestAuthorization auth, out string error) =>
        TryParse(parameter.AsSpan(), out auth, out error);

    /// <summary>
    /// Parses the header parameter (after the scheme). Each of device, seq, ts and sig exactly once, in any order, parts
    /// separated by commas with optional whitespace around each; seq and ts are decimal integers &gt;= 1. Returns false
    /// with a message naming what is wrong. Only the device id and the signature become strings.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> parameter, out DeviceRequestAuthorization auth, out string error)
    {
        auth = default;
        ReadOnlySpan<char> device = default, seq = default, ts = default, sig = default;
        bool hasDevice = false, hasSeq = false, hasTs = false, hasSig = false;
        var rest = parameter;
        while (true)
        {
            var comma = rest.IndexOf(',');
            var part = (comma < 0 ? rest : rest[..comma]).Trim();
            var eq = part.IndexOf('=');
            if (eq <= 0) { error = $"'{Truncate(part)}' is not name=value"; return false; }
            var name = part[..eq];
            var value = part[(eq + 1)..];
            bool seen;
            if (name.SequenceEqual("device")) { seen = hasDevice; hasDevice = true; device = value; }
            else if (name.SequenceEqual("seq")) { seen = hasSeq; hasSeq = true; seq = value; }
            else if (name.SequenceEqual("ts")) { seen = hasTs; hasTs = true; ts = value; }
            else if (name.SequenceEqual("sig")) { seen = hasSig; hasSig = true; sig = value; }
            else { error = $"unknown parameter '{Truncate(name)}' (expected device, seq, ts, sig)"; return false; }
            if (seen) { error = $"parameter '{name}' appears twice"; return false; }
            if (comma < 0) break;
            rest = rest[(comma + 1)..];
        }
        if (!(hasDevice && hasSeq && hasTs && hasSig))
        {
            error = "device, seq, ts and sig are all required";
            return false;
        }
        if (!long.TryParse(seq, NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s < 1)
        {
            error = "seq must be a decimal integer >= 1";
            return false;
        }
        if (!long.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out var t) || t < 1)
        {
            error = "ts must be the signing time in Unix seconds";
            return false;
        }
        if (sig.Length is 0 or > MaxSignatureLength)
        {
            error = "sig must be the base64url HMAC-SHA256 (43 characters)";
            return false;
        }
        auth = new DeviceRequestAuthorization(device.ToString(), s, t, sig.ToString());
        error = "";
        return true;
    }

    private const int HashLength = 32;
    private const int MaxSignatureLength = 128;

    /// <summary>True when <paramref name="auth"/>'s signature is the HMAC of the given request under <paramref name="requestKey"/> (constant time).</summary>
    public static bool Verify(byte[] requestKey, DeviceRequestAuthorization auth, string method, string pathAndQuery, string bodySha256Hex)
    {
        Span<byte> expected = stackalloc byte[HashLength];
        Compute(requestKey, method, pathAndQuery, auth.DeviceId, auth.Sequence, auth.Timestamp, bodySha256Hex, expected);
        Span<byte> presented = stackalloc byte[MaxSignatureLength];
        return TryFromBase64Url(auth.Signature, presented, out var length) && CryptographicOperations.FixedTimeEquals(expected, presented[..length]);
    }

    /// <summary>Base64url without padding.</summary>
    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    // Base64url with or without padding ('+' and '/' are read too, as base64 would): mapped to base64 and padded, then
    // decoded by the base64 decoder, so exactly what Convert.FromBase64String accepts after that mapping is accepted.
    private static bool TryFromBase64Url(ReadOnlySpan<char> s, Span<byte> bytes, out int length)
    {
        length = 0;
        if (s.Length > MaxSignatureLength) return false;
        Span<char> b = stackalloc char[MaxSignatureLength + 2];
        var n = 0;
        foreach (var c in s) b[n++] = c switch { '-' => '+', '_' => '/', _ => c };
        switch (n % 4)
        {
            case 2: b[n++] = '='; b[n++] = '='; break;
            case 3: b[n++] = '='; break;
        }
        return Convert.TryFromBase64Chars(b[..n], bytes, out length);
    }

    private static string Truncate(ReadOnlySpan<char> s) => s.Length <= 32 ? s.ToString() : string.Concat(s[..32], "...");
}

/// <summary>
/// Signs requests of one device (<see cref="DeviceRequestSignature"/>). The sequence comes from the caller: the agent
/// draws it from a source that stays monotonic across restarts, tests from a process-wide counter.
/// </summary>
/// <param name="deviceId">The device.</param>
/// <param name="secret">Its provisioned secret; only the derived request key is kept.</param>
/// <param name="nextSequence">Returns the next sequence number (strictly increasing for one device).</param>
/// <param name="clock">Source of the timestamp; the system clock when null.</param>
public sealed class DeviceRequestSigner(string deviceId, string secret, Func<long> nextSequence, TimeProvider? clock = null)
{
    private readonly byte[] _key = DeviceRequestSignature.DeriveRequestKey(secret);
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    /// <summary>The signing device.</summary>
    public string DeviceId { get; } = deviceId;

    /// <summary>The sequence number used by the last <see cref="Sign"/>.</summary>
    public long LastSequence { get; private set; }

    /// <summary>Sets the Authorization header of <paramref name="request"/> for exactly these body bytes.</summary>
    public void Sign(HttpRequestMessage request, ReadOnlySpan<byte> body)
    {
        var sequence = nextSequence();
        LastSequence = sequence;
        var parameter = DeviceRequestSignature.Sign(_key, request.Method.Method, PathAndQuery(request.RequestUri), DeviceId, sequence,
            _clock.GetUtcNow().ToUnixTimeSeconds(), body);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(DeviceRequestSignature.Scheme, parameter);
    }

    /// <summary>Reads the request's content (if any) and signs it; the content must be re-readable (byte, string or JSON content).</summary>
    public async Task SignAsync(HttpRequestMessage request, CancellationToken ct = default)
    {
        var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        Sign(request, body);
    }

    /// <summary>The request target as HttpClient sends it: escaped path and query; a relative URI is taken as rooted.</summary>
    public static string PathAndQuery(Uri? uri)
    {
        ArgumentNullException.ThrowIfNull(uri, "request.RequestUri");
        if (uri.IsAbsoluteUri) return uri.PathAndQuery;
        var relative = uri.OriginalString;
        return new Uri(new Uri("http://device.invalid/"), relative.StartsWith('/') ? relative : "/" + relative).PathAndQuery;
    }
}
