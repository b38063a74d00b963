using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Storage;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Manifests;

/// <summary>
/// Compact encodings of a release's canonical manifest (docs/store-format.md "Compact manifests"): the whole manifest as
/// one zstd frame (<c>manifests/&lt;p&gt;/&lt;v&gt;.json.zst</c>), and patches coded against an earlier release's canonical
/// manifest bytes (<c>manifests/&lt;p&gt;/&lt;v&gt;.from-&lt;versionId&gt;.zst</c>, zstd with the older manifest as a raw prefix,
/// what <c>zstd --patch-from</c> does). They are transport only: the signed object stays the canonical JSON, so whoever
/// decodes one checks the decoded bytes exactly as if the JSON had been fetched (length and SHA-256 pinned by the
/// directive, signature over those bytes, strict parse). An encoding is stored only when it is smaller than the one it
/// replaces (the patch than the whole frame, the whole frame than the JSON).
/// </summary>
public static unsafe class CompactManifest
{
    /// <summary>zstd level of every encoding (<see cref="PatchCodec.DefaultLevel"/>: manifests are small, decoding cost does not depend on it).</summary>
    public const int Level = PatchCodec.DefaultLevel;

    /// <summary>Earlier releases (newest first) a publish codes a patch against: devices are mostly one or two releases behind.</summary>
    public const int PatchBases = 2;

    /// <summary>Largest manifest (reference + content) an encoding is made or decoded for: the patch codec's window.</summary>
    public const long MaxInput = PatchCodec.MaxPatchInput;

    /// <summary>Encodes <paramref name="manifest"/> alone (empty <paramref name="reference"/>) or against an earlier manifest's bytes.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> reference, ReadOnlySpan<byte> manifest) => PatchCodec.Create(reference, manifest, Level);

    /// <summary>
    /// Decodes one encoding into exactly <paramref name="manifestBytes"/> bytes. The output buffer has that size and the
    /// frame is decoded into it in one call: a frame that declares or produces more fails without allocating, one that
    /// produces fewer is refused, and the window is bounded by reference + content. Memory: the output, plus a decoder
    /// context (no window buffer; the reference is read in place). Throws <see cref="IntegrityException"/> for any bad input.
    /// The decoded bytes are not trusted: the caller verifies them as the manifest they claim to be.
    /// </summary>
    public static byte[] Decode(ReadOnlySpan<byte> reference, ReadOnlySpan<byte> encoded, long manifestBytes)
    {
        if (manifestBytes <= 0 || reference.Length + manifestBytes > MaxInput)
            throw new IntegrityException($"a compact manifest of {manifestBytes} bytes against a {reference.Length}-byte reference is outside 1 .. {MaxInput} bytes in all.");
        if (encoded.Length == 0) throw new IntegrityException("the compact manifest is empty.");
        return PatchCodec.Apply(reference, encoded, manifestBytes, PatchCodec.WindowLogFor(reference.Length, manifestBytes));
    }

    /// <summary>
    /// The manifest length the encoding's zstd frame header declares (every encoding written here declares it); null when
    /// the header is damaged or declares none. For a reader that has no pinned length: it decodes with this as the exact
    /// bound after checking it against its own limit.
    /// </summary>
    public static long? DeclaredLength(ReadOnlySpan<byte> encoded)
    {
        fixed (byte* src = encoded)
        {
            var size = ZstdSharp.Unsafe.Methods.ZSTD_getFrameContentSize(src, (nuint)encoded.Length);
            // ZSTD_CONTENTSIZE_UNKNOWN (2^64 - 1) and ZSTD_CONTENTSIZE_ERROR (2^64 - 2): no usable declaration.
            return size >= ulong.MaxValue - 1 || size > long.MaxValue ? null : (long)size;
        }
    }

    /// <summary>
    /// Writes the compact encodings of a release's manifest into <paramref name="store"/>: the whole frame when smaller
    /// than the JSON, and for each of <paramref name="bases"/> (earlier releases' version IDs and canonical manifest bytes)
    /// a patch when smaller than the whole frame (or the JSON without one). Each is written atomically and rewritten
    /// identically by a repeated call; call it before the release is committed to its index (or, for an existing release,
    /// under the writer lock), so nothing lists an encoding whose manifest is not durable. Returns the paths written.
    /// </summary>
    public static IReadOnlyList<string> Write(IContentStore store, string manifestPath, ReadOnlySpan<byte> manifest,
        IEnumerable<(long VersionId, byte[] Manifest)> bases)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(bases);
        var written = new List<string>();
        if (manifest.Length > MaxInput / 2) return written;
        var whole = Encode([], manifest);
        var replaced = (long)manifest.Length;
        if (whole.Length < replaced)
        {
            store.WriteFile(StoreLayout.CompactManifestPath(manifestPath), whole);
            written.Add(StoreLayout.CompactManifestPath(manifestPath));
            replaced = whole.Length;
        }
        foreach (var (versionId, reference) in bases)
        {
            if (reference.Length + (long)manifest.Length > MaxInput) continue;
            var patch = Encode(reference, manifest);
            if (patch.Length >= replaced) continue;
            var path = StoreLayout.ManifestPatchPath(manifestPath, versionId);
            store.WriteFile(path, patch);
            written.Add(path);
        }
        return written;
    }

    /// <summary>
    /// <see cref="Write"/> for a release about to be committed to <paramref name="index"/> (the index before it): patches
    /// against the newest <see cref="PatchBases"/> releases it lists. Publish and the node's release intake both call it
    /// after the signature and before the index, under the writer lock.
    /// </summary>
    public static IReadOnlyList<string> WriteForNewRelease(IContentStore store, ReleaseIndex index, string manifestPath, ReadOnlySpan<byte> manifest)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(index);
        var bases = new List<(long, byte[])>();
        foreach (var entry in index.Versions.OrderByDescending(v => v.VersionId).Take(PatchBases))
            if (store.ReadFile(entry.ManifestPath) is { } bytes)
                bases.Add((entry.VersionId, bytes));
        return Write(store, manifestPath, manifest, bases);
    }

    /// <summary>
    /// Writes one patch of an existing release's manifest against an earlier release's (the node's delta builder, when it
    /// builds that upgrade), unless it is already there or would not be smaller than what a device fetches without it.
    /// Returns the path when written.
    /// </summary>
    public static string? WritePatchIfAbsent(IContentStore store, string manifestPath, ReadOnlySpan<byte> manifest, long baseVersionId,
        ReadOnlySpan<byte> baseManifest)
    {
        ArgumentNullException.ThrowIfNull(store);
        var path = StoreLayout.ManifestPatchPath(manifestPath, baseVersionId);
        if (store.FileExists(path) || baseManifest.Length + (long)manifest.Length > MaxInput) return null;
        var whole = store.ReadFile(StoreLayout.CompactManifestPath(manifestPath));
        var replaced = whole?.Length ?? manifest.Length;
        var patch = Encode(baseManifest, manifest);
        if (patch.Length >= replaced) return null;
        store.WriteFile(path, patch);
        return path;
    }

    /// <summary>
    /// The compact encodings a device that holds the canonical manifest of <paramref name="installedVersionId"/> (0: none)
    /// can fetch instead of <paramref name="manifestPath"/>, best first, as the store holds them now (one or two file
    /// checks): the patch against its installed manifest, then the whole frame. The gateway offers exactly this list and
    /// <c>orch release plan</c> counts its first entry, so both read the store the same way.
    /// </summary>
    public static IReadOnlyList<string> Offered(IContentStore store, string manifestPath, long installedVersionId)
    {
        ArgumentNullException.ThrowIfNull(store);
        var offered = new List<string>(2);
        if (StoreLayout.ParseManifestPath(manifestPath) is null) return offered;
        if (installedVersionId > 0)
        {
            var patch = StoreLayout.ManifestPatchPath(manifestPath, installedVersionId);
            if (store.FileExists(patch)) offered.Add(patch);
        }
        var whole = StoreLayout.CompactManifestPath(manifestPath);
        if (store.FileExists(whole)) offered.Add(whole);
        return offered;
    }
}
