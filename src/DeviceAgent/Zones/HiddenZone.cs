using System.Text.Json;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>The items the hidden zone holds, each sealed separately so damage to one does not lose the others.</summary>
public enum HiddenItem
{
    /// <summary>Encrypted backup of the updater (an <see cref="UpdaterBundle"/>).</summary>
    UpdaterBackup,
    /// <summary>Digest of the updater tree, so the free copy can be checked even if the backup is damaged.</summary>
    UpdaterDigest,
    /// <summary>Installed version ID and version string (<see cref="InstalledVersion"/>).</summary>
    InstalledVersion,
    /// <summary>Ed25519 trust root public key that signs manifests.</summary>
    TrustRoot,
    /// <summary>Product content key that decrypts chunks.</summary>
    ContentKey,
    /// <summary>Per-device secret; requests to the gateway are signed with a key derived from it (it never travels).</summary>
    DeviceCredential,
}

/// <summary>State of a hidden item after an attempt to open it.</summary>
public enum HiddenItemState
{
    /// <summary>Present and authentic.</summary>
    Ok,
    /// <summary>No file.</summary>
    Missing,
    /// <summary>A file that does not open with this device's key (altered, truncated, or from another device).</summary>
    Damaged,
}

/// <summary>Installed release as recorded in the hidden zone.</summary>
/// <param name="VersionId">Monotonic version ID (0 = nothing installed).</param>
/// <param name="Version">Version string, for humans.</param>
public sealed record InstalledVersion(long VersionId, string Version)
{
    /// <summary>Nothing installed yet.</summary>
    public static readonly InstalledVersion None = new(0, "");
}

/// <summary>Reads and writes sealed items of the hidden zone.</summary>
public sealed class HiddenZone(ZoneLayout layout, DeviceKey key)
{
    /// <summary>File name of an item inside the hidden folder.</summary>
    public static string FileName(HiddenItem item) => item switch
    {
        HiddenItem.UpdaterBackup => "updater.bak.sealed",
        HiddenItem.UpdaterDigest => "updater.digest.sealed",
        HiddenItem.InstalledVersion => "version.sealed",
        HiddenItem.TrustRoot => "trust-root.sealed",
        HiddenItem.ContentKey => "content-key.sealed",
        HiddenItem.DeviceCredential => "credential.sealed",
        _ => throw new ArgumentOutOfRangeException(nameof(item)),
    };

    /// <summary>Opens an item.</summary>
    public (HiddenItemState State, byte[]? Value) Read(HiddenItem item)
    {
        var path = layout.Hidden(item);
        if (!File.Exists(path)) return (HiddenItemState.Missing, null);
        byte[] sealedBytes;
        try { sealedBytes = File.ReadAllBytes(path); }
        catch (IOException) { return (HiddenItemState.Damaged, null); }
        var plain = key.Open(sealedBytes, FileName(item));
        return plain is null ? (HiddenItemState.Damaged, null) : (HiddenItemState.Ok, plain);
    }

    /// <summary>Opens an item that must be present.</summary>
    /// <exception cref="HiddenZoneException">Missing or damaged, with the recovery step.</exception>
    public byte[] ReadRequired(HiddenItem item)
    {
        var (state, value) = Read(item);
        return state switch
        {
            HiddenItemState.Ok => value!,
            _ => throw new HiddenZoneException(
                $"hidden zone item '{FileName(item)}' is {state.ToString().ToLowerInvariant()} in '{layout.Zones.Hidden}'; " +
                RecoveryHint(item)),
        };
    }

    /// <summary>Seals and durably writes an item.</summary>
    public void Write(HiddenItem item, ReadOnlySpan<byte> value)
    {
        if (!Directory.Exists(layout.Zones.Hidden))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(layout.Zones.Hidden);
            else Directory.CreateDirectory(layout.Zones.Hidden, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        DurableFile.WriteAllBytes(layout.Hidden(item), key.Seal(value, FileName(item)), ownerOnly: true);
    }

    /// <summary>
    /// Seals bytes kept outside the hidden folder (e.g. a <see cref="StatIndex"/>) with the device key; <paramref name="label"/>
    /// is authenticated, so such a file cannot be passed off as a hidden item or as another label's file.
    /// </summary>
    public byte[] Seal(string label, ReadOnlySpan<byte> value) => key.Seal(value, "external:" + label);

    /// <summary>Opens what <see cref="Seal(string, ReadOnlySpan{byte})"/> sealed under the same label; null when altered or not this device's.</summary>
    public byte[]? Open(string label, ReadOnlySpan<byte> sealedBytes) => key.Open(sealedBytes, "external:" + label);

    /// <summary>
    /// The sealed version record (the device's own rollback floor); null when it is missing or damaged, which means
    /// <em>unknown</em>: never "nothing installed", since deleting or breaking the file must not lower the floor.
    /// Provisioning writes a record for version 0, so a fresh device has a known floor of 0.
    /// </summary>
    public VersionRecord? ReadVersionRecord()
    {
        var (state, value) = Read(HiddenItem.InstalledVersion);
        if (state != HiddenItemState.Ok) return null;
        try
        {
            return JsonSerializer.Deserialize(value!, Trust.AgentJsonContext.Default.VersionRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The installed version to report; <see cref="InstalledVersion.None"/> when the record is unknown (see <see cref="ReadVersionRecord"/>).</summary>
    public InstalledVersion ReadInstalledVersion() =>
        ReadVersionRecord() is { } r ? new InstalledVersion(r.VersionId, r.Version) : InstalledVersion.None;

    /// <summary>Records the installed version, one counter step above the previous record, with the installed manifest's SHA-256.</summary>
    public void WriteInstalledVersion(InstalledVersion version, string? manifestSha256 = null)
    {
        var previous = ReadVersionRecord();
        WriteVersionRecord(new VersionRecord(version.VersionId, version.Version, 0, manifestSha256,
            previous?.UpdaterGeneration ?? Zones.UpdaterGeneration.Read(this).Generation));
    }

    /// <summary>Writes <paramref name="record"/> with its counter one above the current record's.</summary>
    public void WriteVersionRecord(VersionRecord record)
    {
        var counter = (ReadVersionRecord()?.Counter ?? 0) + 1;
        Write(HiddenItem.InstalledVersion, JsonSerializer.SerializeToUtf8Bytes(record with { Counter = counter }, Trust.AgentJsonContext.Default.VersionRecord));
    }

    /// <summary>What the operator should do when an item is lost.</summary>
    public static string RecoveryHint(HiddenItem item) => item switch
    {
        HiddenItem.UpdaterBackup or HiddenItem.UpdaterDigest or HiddenItem.TrustRoot or HiddenItem.InstalledVersion =>
            "rebuild it with `orch-agent recover --from-virtual`",
        _ => "it cannot be rebuilt from the virtual zone; re-provision the device with `orch-agent provision` (new credential / content key from the operator)",
    };

}

/// <summary>
/// The sealed installed-version record (<c>version.sealed</c>): the device's own rollback floor. The counter grows by
/// one with every write; the manifest hash pins what "repair the installed version" may restore.
/// </summary>
/// <param name="VersionId">Installed version ID (0 = nothing installed).</param>
/// <param name="Version">Version string.</param>
/// <param name="Counter">Monotonic write counter (0 in records written before it existed).</param>
/// <param name="ManifestSha256">SHA-256 of the installed manifest's bytes; null when not known (provisioning, older records).</param>
/// <param name="UpdaterGeneration">Generation of the sealed updater backup and digest (<see cref="UpdaterGeneration"/>); a
/// pair of an older generation was copied back and is refused.</param>
public sealed record VersionRecord(long VersionId, string Version, long Counter = 0, string? ManifestSha256 = null, long UpdaterGeneration = 0);

/// <summary>The hidden zone cannot be opened or an item in it is unusable; the message says how to recover.</summary>
public sealed class HiddenZoneException(string message) : Exception(message);
