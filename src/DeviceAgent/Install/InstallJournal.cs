using System.Text.Json;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Trust;

namespace Orchestrator.DeviceAgent.Install;

/// <summary>
/// Written (fsynced, atomically) before the first rename of a swap and removed after the last step. Its presence
/// on start means a swap was interrupted. Since the staged tree was fully verified before the journal was written,
/// recovery rolls forward to <see cref="VersionId"/>, unless the new version still had to pass its health check at
/// the installed path (<see cref="HealthCheckPending"/>): then it is not known to be healthy and recovery puts the
/// previous version back.
/// </summary>
/// <param name="Format">Journal format version (1).</param>
/// <param name="VersionId">Version ID being installed.</param>
/// <param name="Version">Version string being installed.</param>
/// <param name="InventoryDigest">Digest of the staged tree.</param>
/// <param name="HealthCheckPending">True from the swap until the new version passed its health check (absent: false).</param>
public sealed record InstallJournal(int Format, long VersionId, string Version, string InventoryDigest, bool HealthCheckPending = false)
{
    /// <summary>Writes the journal durably.</summary>
    public void Write(string path) => DurableFile.WriteAllBytes(path, JsonSerializer.SerializeToUtf8Bytes(this, AgentJsonContext.Default.InstallJournal));

    /// <summary>Reads a journal; null when absent, throws when unreadable.</summary>
    public static InstallJournal? TryRead(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var j = JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJsonContext.Default.InstallJournal);
            return j is { Format: 1 } ? j : throw new InvalidDataException($"install journal '{path}' has an unknown format");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"install journal '{path}' is unreadable: {e.Message}");
        }
    }
}
