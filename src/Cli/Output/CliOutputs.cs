using Orchestrator.ChunkStore.Maintenance;
using Orchestrator.Messages.Devices;

namespace Orchestrator.Cli.Output;

// The --json shapes of local commands. Named records (not anonymous objects) so their JSON metadata can be
// generated at compile time (CliJsonContext); property order is output order.

/// <summary><c>{"error","exitCode","message"}</c>, printed on stdout with <c>--json</c> when a command fails.</summary>
internal sealed record ErrorOutput(string Error, int ExitCode, string Message);

/// <summary>Result of <c>orch publish --json</c>.</summary>
internal sealed record PublishOutput(
    string Product, string Version, long VersionId, string ManifestPath, string SignaturePath, int Files, int Symlinks,
    long BytesTotal, long ChunksTotal, long ChunksDistinct, long ChunksNew, long BytesNew, string InventoryDigest,
    double ElapsedSeconds, double ThroughputMiBPerSecond, string? Channel);

/// <summary>Result of <c>orch release publish --server --json</c>: the local publish, then what went over the network.</summary>
internal sealed record ReleaseUploadOutput(
    string Server, string Product, string Version, long VersionId, string ManifestPath, int Files, long BytesTotal, int Chunks,
    int ChunksUploaded, long BytesUploaded, IReadOnlyList<long> RootsAdded, bool AlreadyPublished, string? Channel, double ElapsedSeconds);

/// <summary>Result of <c>orch delta build --json</c>.</summary>
internal sealed record DeltaBuildOutput(
    string ManifestPath, string SignaturePath, string Product, string From, long FromVersionId, string To, long ToVersionId,
    bool AlreadyBuilt, int FilesPatched, int FilesChunks, long PatchBytes, long ChunkBytesReplaced, int ObjectsWritten, int Level,
    double ElapsedSeconds, string Method, int Parallelism, long MemoryBytes, DeltaAutoOutput? Auto);

/// <summary>How <c>orch delta build --method auto</c> chose (bytes a device fetches over each candidate; null: not coded).</summary>
internal sealed record DeltaAutoOutput(long ReleaseBytes, int ProbeLevel, long? ProbeBytes, long? FilesBytes,
    double ProbeSeconds, double ReleaseSeconds, double FilesSeconds);

/// <summary>Result of <c>orch release plan --json</c>: what a device fetches for one upgrade.</summary>
internal sealed record ReleasePlanOutput(string Method, long Bytes, int Requests, int Objects);

/// <summary><c>orch release chunk-patches --json</c>.</summary>
internal sealed record ChunkPatchesOutput(string IndexPath, string Version, string BaseVersion, bool AlreadyBuilt, int Candidates, int Patched,
    long PatchBytes, long ChunkBytesReplaced, int Packs, double ElapsedSeconds, double CpuSeconds);

/// <summary>Result of <c>orch keys init --json</c>.</summary>
internal sealed record KeysInitOutput(
    string Directory, string SigningKey, string PublicKey, string ContentKey, string PublicKeyHex, string ContentKeyFingerprint,
    string? RootKey = null, string? DirectorKey = null, string? RootDocument = null, long RootVersion = 0, int RootsPublished = 0);

/// <summary>Result of <c>orch keys rotate --json</c>.</summary>
internal sealed record KeysRotateOutput(string Directory, string Role, long RootVersion, string RootDocument, int RootsPublished);

/// <summary>Result of <c>orch release floor --json</c>.</summary>
internal sealed record ReleaseFloorOutput(string Product, string MinVersion, long MinVersionId, string Path);

/// <summary>Result of <c>orch store verify --json</c>.</summary>
internal sealed record StoreVerifyOutput(bool Ok, long ChunksChecked, int ManifestsChecked, bool SignaturesVerified, long FilesDecrypted, long ChunkPatchesRebuilt, IReadOnlyList<string> Problems)
{
    public static StoreVerifyOutput Of(VerifyReport r) => new(r.Ok, r.ChunksChecked, r.ManifestsChecked, r.SignaturesVerified, r.FilesDecrypted, r.ChunkPatchesRebuilt, r.Problems);
}

/// <summary>Result of <c>orch device provision --json</c>.</summary>
internal sealed record DeviceProvisionOutput(
    string DeviceId, string? Secret, DateTimeOffset CreatedUtc, bool Registered, string? Product, string[] Tags, DeviceStatus? Status);
