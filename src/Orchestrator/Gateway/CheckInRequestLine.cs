namespace Orchestrator.Node.Gateway;

/// <summary>
/// The check-in route (<c>POST /v1/devices/{deviceId}/check-in</c>, <see cref="DeviceEndpoints"/>) recognised in a
/// connection's first bytes, before HTTP parses them: only the exact form an agent sends, with a device id of
/// <see cref="Orchestrator.Messages.Devices.DeviceIdRules.Pattern"/> written as is. Anything else (another route or
/// method, an escaped or invalid id, a query, a request line not complete yet, TLS) is not recognised and goes on to
/// HTTP, which routes it as always, so what this accepts is a subset of what the route matches, with the same id.
/// </summary>
public static class CheckInRequestLine
{
    private static ReadOnlySpan<byte> Prefix => "POST /v1/devices/"u8;
    private static ReadOnlySpan<byte> Suffix => "/check-in HTTP/1."u8;

    /// <summary>Longest device id (<see cref="Orchestrator.Messages.Devices.DeviceIdRules.Pattern"/>).</summary>
    public const int MaxDeviceIdLength = 128;

    /// <summary>Bytes that hold any request line this recognises.</summary>
    public static readonly int MaxLength = Prefix.Length + MaxDeviceIdLength + Suffix.Length + "1\r\n".Length;

    /// <summary>
    /// The device id (ASCII bytes, a slice of <paramref name="head"/>) when <paramref name="head"/> begins with a check-in's
    /// request line; false otherwise.
    /// </summary>
    public static bool TryDeviceId(ReadOnlySpan<byte> head, out ReadOnlySpan<byte> deviceId)
    {
        deviceId = default;
        if (!head.StartsWith(Prefix)) return false;
        var rest = head[Prefix.Length..];
        var end = rest.IndexOf((byte)'/');
        if (end is < 1 or > MaxDeviceIdLength) return false;
        var id = rest[..end];
        if (!char.IsAsciiLetterOrDigit((char)id[0])) return false;
        foreach (var b in id)
            if (!(char.IsAsciiLetterOrDigit((char)b) || b is (byte)'.' or (byte)'_' or (byte)':' or (byte)'-')) return false;
        var tail = rest[end..];
        // The version's minor digit and the line's end: HTTP/1.0 or HTTP/1.1 and nothing else on the line.
        if (!tail.StartsWith(Suffix) || tail.Length < Suffix.Length + 3) return false;
        var after = tail[Suffix.Length..];
        if (after[0] is not ((byte)'0' or (byte)'1') || after[1] != (byte)'\r' || after[2] != (byte)'\n') return false;
        deviceId = id;
        return true;
    }
}
