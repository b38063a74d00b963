namespace Orchestrator.Messages.Admin;

/// <summary>
/// Body of <c>POST /admin/v1/devices/provision-batch</c> (<c>orch device provision --count N --prefix P</c> or
/// <c>--csv FILE</c>): create a fresh credential for each of many devices. Give either <see cref="DeviceIds"/> or
/// <see cref="Prefix"/> with <see cref="Count"/> (ids <c>Prefix + number</c>, numbers from <see cref="Start"/>, zero-padded to
/// the width of the largest). The whole request is checked first (ids, duplicates, devices that already have a
/// credential); a refused request creates nothing. The answer streams the secrets back once (<see cref="DeviceProvisionLine"/>).
/// </summary>
/// <param name="Prefix">Id prefix of generated ids.</param>
/// <param name="Count">How many ids to generate from <see cref="Prefix"/> (1..<see cref="MaxDevices"/>).</param>
/// <param name="Start">First number of generated ids (default 1).</param>
/// <param name="DeviceIds">Explicit ids (each once, at most <see cref="MaxDevices"/>).</param>
public sealed record DeviceBatchProvisionRequest(string? Prefix = null, int Count = 0, long Start = 1, IReadOnlyList<string>? DeviceIds = null)
{
    /// <summary>Most devices in one request: a node's whole fleet fits in one request, checked in full before any write.</summary>
    public const int MaxDevices = 1_000_000;

    /// <summary>Largest request body (a million ids of up to ~60 characters).</summary>
    public const long MaxBodyBytes = 64L * 1024 * 1024;

    /// <summary>Media type of the streamed answer: one JSON object per line.</summary>
    public const string StreamMediaType = "application/x-ndjson";

    /// <summary>The id of the <paramref name="index"/>-th generated device (0-based).</summary>
    public string GeneratedId(int index) =>
        Prefix + (Start + index).ToString(System.Globalization.CultureInfo.InvariantCulture)
            .PadLeft((Start + Count - 1).ToString(System.Globalization.CultureInfo.InvariantCulture).Length, '0');
}

/// <summary>
/// One line of the streamed answer of <c>POST /admin/v1/devices/provision-batch</c>. Credential lines carry
/// <see cref="DeviceId"/> and <see cref="Secret"/> (shown only here, never again); the stream ends with one line with
/// <see cref="Done"/> and the number of devices, or with <see cref="Error"/> and <see cref="Message"/> when writing
/// stopped part-way (the credential lines before it were created and are valid). A stream without either was cut.
/// </summary>
/// <param name="DeviceId">Device id (credential line).</param>
/// <param name="Secret">The device's secret (credential line).</param>
/// <param name="Done">True on the last line of a complete answer.</param>
/// <param name="Devices">On the last line: devices provisioned.</param>
/// <param name="Error">Stable error code when writing stopped part-way.</param>
/// <param name="Message">What went wrong and what to do.</param>
public sealed record DeviceProvisionLine(string? DeviceId = null, string? Secret = null, bool Done = false, int Devices = 0, string? Error = null, string? Message = null);
