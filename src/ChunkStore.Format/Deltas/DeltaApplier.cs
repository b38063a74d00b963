using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// Device side of a delta: decodes a file's patch objects and applies the patch to the local source file,
/// checking the source hash before and the target hash after. Any failure is an <see cref="IntegrityException"/>
/// and the caller falls back to chunks; nothing unverified leaves this class.
/// </summary>
public static class DeltaApplier
{
    /// <summary>
    /// Bytes <see cref="Apply"/> holds at once for <paramref name="file"/> with a source of
    /// <paramref name="sourceLength"/> bytes: the source, the decoded patch and the result are all in memory.
    /// </summary>
    public static long MemoryNeeded(DeltaFile file, long sourceLength)
    {
        ArgumentNullException.ThrowIfNull(file);
        return sourceLength + file.Parts.Sum(p => (long)p.Length) + file.Size;
    }

    /// <summary>
    /// Rebuilds <paramref name="file"/>'s target content from <paramref name="source"/> (the local source file's
    /// bytes) and its patch objects, read through <paramref name="readObject"/> (stored bytes, or null when absent).
    /// </summary>
    public static byte[] Apply(DeltaFile file, ReadOnlySpan<byte> source, Func<ChunkId, byte[]?> readObject, ContentKey key)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(readObject);
        if (file.Method != DeltaMethod.Patch)
            throw new ArgumentException($"'{file.Path}' is listed as {file.Method}, not as a patch.", nameof(file));
        var sourceHash = Convert.ToHexStringLower(SHA256.HashData(source));
        if (sourceHash != file.SourceSha256)
            throw new IntegrityException($"'{file.Path}': local source '{file.SourcePath}' has SHA-256 {sourceHash}, the delta expects {file.SourceSha256}.");

        var patch = new byte[file.Parts.Sum(p => (long)p.Length)];
        var offset = 0;
        foreach (var part in file.Parts)
        {
            var stored = readObject(part.Id) ?? throw new IntegrityException($"'{file.Path}': patch object {part.Id} is not available.");
            ChunkCodec.Decode(stored, key, part.Length, part.Id).CopyTo(patch.AsSpan(offset));
            offset += part.Length;
        }
        var result = PatchCodec.Apply(source, patch, file.Size, file.WindowLog);
        var resultHash = Convert.ToHexStringLower(SHA256.HashData(result));
        if (resultHash != file.Sha256)
            throw new IntegrityException($"'{file.Path}': patched content has SHA-256 {resultHash}, the delta promises {file.Sha256}.");
        return result;
    }
}
