using System.Text.RegularExpressions;

namespace Orchestrator.Messages.Devices;

/// <summary>Validation of device ids and the other identifiers device messages carry.</summary>
public static partial class DeviceIdRules
{
    /// <summary>The device id grammar: starts with a letter or digit, then up to 127 of letters, digits, <c>. _ : -</c>.</summary>
    public const string Pattern = @"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\z";

    [GeneratedRegex(Pattern, RegexOptions.CultureInvariant)]
    private static partial Regex DeviceIdRegex();

    /// <summary>True when <paramref name="deviceId"/> matches <see cref="Pattern"/>.</summary>
    public static bool IsValid(string? deviceId) => deviceId is not null && DeviceIdRegex().IsMatch(deviceId);

    /// <summary>Returns <paramref name="deviceId"/> unchanged or throws a specific <see cref="ArgumentException"/>.</summary>
    /// <param name="deviceId">The candidate id.</param>
    /// <param name="parameterName">Name of the input, for the error message.</param>
    public static string Validate(string? deviceId, string parameterName = "deviceId")
    {
        if (IsValid(deviceId)) return deviceId!;
        var shown = deviceId is null ? "null" : $"'{(deviceId.Length > 40 ? deviceId[..40] + "..." : deviceId)}' (length {deviceId.Length})";
        throw new ArgumentException(
            $"Invalid device id {shown}: a device id must match {Pattern} (1-128 characters, starting with a letter or digit, " +
            "then letters, digits, '.', '_', ':' or '-'). Fix the id the device was provisioned with.", parameterName);
    }

    /// <summary>Throws when <paramref name="value"/> is null or blank; returns it otherwise.</summary>
    public static string Required(string? value, string parameterName)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"'{parameterName}' is required and must not be blank.", parameterName);
        return value;
    }

    /// <summary>Throws when <paramref name="value"/> is negative; returns it otherwise.</summary>
    public static long NonNegative(long value, string parameterName)
    {
        if (value < 0)
            throw new ArgumentOutOfRangeException(parameterName, value, $"'{parameterName}' must be zero or positive.");
        return value;
    }

    /// <summary>Throws when <paramref name="value"/> is not positive; returns it otherwise.</summary>
    public static long Positive(long value, string parameterName)
    {
        if (value <= 0)
            throw new ArgumentOutOfRangeException(parameterName, value, $"'{parameterName}' must be greater than zero.");
        return value;
    }
}
