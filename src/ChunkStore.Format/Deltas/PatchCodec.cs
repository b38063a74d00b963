using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// zstd "patch-from": the old file is referenced as a raw-content prefix (not a trained dictionary), long-distance
/// matching is on and the window covers old + new file, so the new file is coded mostly as copies from the old
/// one (what <c>zstd --patch-from=old -19 --long</c> does). Patches are made with the system libzstd when it loads
/// (like chunk compression, <see cref="Codec.ZstdEncoder"/>; ~2x faster) and with the managed ZstdSharp port
/// otherwise; they are always applied with the port, so an agent needs no native library. Any zstd build's frame
/// applies: identity is the target file's SHA-256, never the patch bytes. Thread-safe (a context per call).
/// </summary>
public static unsafe class PatchCodec
{
    /// <summary>Default compression level (zstd's highest non-ultra level, as <c>--patch-from -19</c>).</summary>
    public const int DefaultLevel = 19;

    /// <summary>Smallest window log used (8 MiB); smaller files still get this window.</summary>
    public const int MinWindowLog = 23;

    /// <summary>Largest window log accepted (1 GiB): old + new file must fit, and the agent must hold both in memory.</summary>
    public const int MaxWindowLog = 30;

    /// <summary>Largest old + new size a patch is made for (2^<see cref="MaxWindowLog"/> bytes).</summary>
    public const long MaxPatchInput = 1L << MaxWindowLog;

    /// <summary>Highest zstd level (<c>--ultra -22</c>).</summary>
    public const int MaxLevel = 22;

    /// <summary>
    /// Long-distance matching parameters of every patch: zstd 1.5.4's defaults for <paramref name="windowLog"/>
    /// (hash log = window log - 7, 64-byte minimum match, 8-entry buckets, one hash insert per 128 bytes), set
    /// explicitly because later zstd releases derive larger tables from the level, and the builder's memory budget
    /// must hold whichever library codes the patch.
    /// </summary>
    public static (int HashLog, int MinMatch, int BucketSizeLog, int HashRateLog) LongDistanceParameters(int windowLog) =>
        (Math.Max(6, windowLog - 7), 64, 3, 7);

    /// <summary>
    /// Bytes of one compression context coding a patch at <paramref name="level"/> with a 2^<paramref name="windowLog"/>
    /// window (match-finder tables sized by the level, long-distance table by the window; zstd's own estimate for these
    /// parameters). The input, the prefix and the output are the caller's and not included.
    /// </summary>
    public static long CompressionContextBytes(int level, int windowLog)
    {
        if (level is < 1 or > MaxLevel) throw new ArgumentOutOfRangeException(nameof(level), $"zstd level {level} is outside 1..{MaxLevel}.");
        if (windowLog is < MinWindowLog or > MaxWindowLog) throw new ArgumentOutOfRangeException(nameof(windowLog), $"window log {windowLog} is outside {MinWindowLog}..{MaxWindowLog}.");
        var parameters = Methods.ZSTD_createCCtxParams();
        if (parameters == null) throw new OutOfMemoryException("zstd could not allocate compression parameters.");
        try
        {
            SetPatchParameters((p, v) => Methods.ZSTD_CCtxParams_setParameter(parameters, p, v), level, windowLog, checksum: false);
            var bytes = Methods.ZSTD_estimateCCtxSize_usingCCtxParams(parameters);
            Check(bytes, "context estimate");
            return (long)bytes;
        }
        finally
        {
            Methods.ZSTD_freeCCtxParams(parameters);
        }
    }

    /// <summary>Bytes of the decompression context <see cref="Apply"/> uses: no window buffer, as a frame is decoded in one call into its own buffer.</summary>
    public static long DecompressionContextBytes => (long)Methods.ZSTD_estimateDCtxSize();

    private static void SetPatchParameters(Func<ZSTD_cParameter, int, nuint> set, int level, int windowLog, bool checksum)
    {
        var ldm = LongDistanceParameters(windowLog);
        Check(set(ZSTD_cParameter.ZSTD_c_compressionLevel, level), "level");
        Check(set(ZSTD_cParameter.ZSTD_c_windowLog, windowLog), "windowLog");
        Check(set(ZSTD_cParameter.ZSTD_c_enableLongDistanceMatching, 1), "long-distance matching");
        Check(set(ZSTD_cParameter.ZSTD_c_ldmHashLog, ldm.HashLog), "ldm hash log");
        Check(set(ZSTD_cParameter.ZSTD_c_ldmMinMatch, ldm.MinMatch), "ldm min match");
        Check(set(ZSTD_cParameter.ZSTD_c_ldmBucketSizeLog, ldm.BucketSizeLog), "ldm bucket size log");
        Check(set(ZSTD_cParameter.ZSTD_c_ldmHashRateLog, ldm.HashRateLog), "ldm hash rate log");
        Check(set(ZSTD_cParameter.ZSTD_c_checksumFlag, checksum ? 1 : 0), "checksum");
    }

    /// <summary>Window log large enough to reference all of <paramref name="oldLength"/> while coding <paramref name="newLength"/> bytes.</summary>
    public static int WindowLogFor(long oldLength, long newLength)
    {
        var needed = oldLength + newLength;
        if (needed > MaxPatchInput)
            throw new ArgumentOutOfRangeException(nameof(oldLength), $"old + new = {needed} bytes exceeds the {MaxPatchInput}-byte patch limit.");
        var log = MinWindowLog;
        while ((1L << log) < needed) log++;
        return log;
    }

    /// <summary>Codes <paramref name="newContent"/> against <paramref name="oldContent"/>; returns one zstd frame.</summary>
    public static byte[] Create(ReadOnlySpan<byte> oldContent, ReadOnlySpan<byte> newContent, int level = DefaultLevel) =>
        Create(oldContent, newContent, level, forceManaged: false);

    /// <summary>
    /// One frame of a whole-release stream: <paramref name="content"/> coded against <paramref name="reference"/> with
    /// the stream's <paramref name="windowLog"/> and no content checksum, so a device whose reference differs in one
    /// file still decodes the frame and the files' own SHA-256 decide which pieces are right.
    /// </summary>
    public static byte[] CreateFrame(ReadOnlySpan<byte> reference, ReadOnlySpan<byte> content, int level, int windowLog) =>
        Create(reference, content, level, forceManaged: false, windowLog, checksum: false);

    /// <summary>As <see cref="Create(ReadOnlySpan{byte}, ReadOnlySpan{byte}, int)"/>; tests pin either encoder.</summary>
    internal static byte[] Create(ReadOnlySpan<byte> oldContent, ReadOnlySpan<byte> newContent, int level, bool forceManaged,
        int windowLog = 0, bool checksum = true)
    {
        if (windowLog == 0) windowLog = WindowLogFor(oldContent.Length, newContent.Length);
        if (!forceManaged && Codec.ZstdEncoder.NativePatchAvailable && Environment.GetEnvironmentVariable("ORCH_ZSTD") != "managed")
        {
            var buffer = new byte[Codec.ZstdEncoder.Bound(newContent.Length)];
            var length = Codec.ZstdEncoder.CompressPatchNative(oldContent, newContent, buffer, level, windowLog, checksum);
            return buffer.AsSpan(0, length).ToArray();
        }
        var cctx = Methods.ZSTD_createCCtx();
        if (cctx == null) throw new OutOfMemoryException("zstd could not allocate a compression context.");
        try
        {
            SetPatchParameters((p, v) => Methods.ZSTD_CCtx_setParameter(cctx, p, v), level, windowLog, checksum);
            var bound = (int)Methods.ZSTD_compressBound((nuint)newContent.Length);
            var output = new byte[bound];
            nuint written;
            fixed (byte* old = oldContent)
            fixed (byte* src = newContent)
            fixed (byte* dst = output)
            {
                // A prefix of zero bytes would be "no prefix"; an empty old file simply means plain compression.
                if (oldContent.Length > 0)
                    Check(Methods.ZSTD_CCtx_refPrefix(cctx, old, (nuint)oldContent.Length), "prefix");
                written = Methods.ZSTD_compress2(cctx, dst, (nuint)output.Length, src, (nuint)newContent.Length);
            }
            Check(written, "compress");
            return output.AsSpan(0, (int)written).ToArray();
        }
        finally
        {
            Methods.ZSTD_freeCCtx(cctx);
        }
    }

    /// <summary>
    /// Rebuilds the new content from <paramref name="oldContent"/> and a patch. The output is bounded by
    /// <paramref name="expectedLength"/> (no decompression bombs) and must have exactly that length; the window
    /// is bounded by <paramref name="windowLog"/>. Throws <see cref="Validation.IntegrityException"/> for any bad patch.
    /// </summary>
    public static byte[] Apply(ReadOnlySpan<byte> oldContent, ReadOnlySpan<byte> patch, long expectedLength, int windowLog)
    {
        if (expectedLength < 0 || expectedLength > MaxPatchInput)
            throw new Validation.IntegrityException($"patch target length {expectedLength} is outside 0 .. {MaxPatchInput}.");
        if (windowLog is < MinWindowLog or > MaxWindowLog)
            throw new Validation.IntegrityException($"patch window log {windowLog} is outside {MinWindowLog} .. {MaxWindowLog}.");
        var dctx = Methods.ZSTD_createDCtx();
        if (dctx == null) throw new OutOfMemoryException("zstd could not allocate a decompression context.");
        try
        {
            Check(Methods.ZSTD_DCtx_setParameter(dctx, ZSTD_dParameter.ZSTD_d_windowLogMax, windowLog), "windowLogMax", integrity: true);
            var output = new byte[expectedLength];
            nuint written;
            fixed (byte* old = oldContent)
            fixed (byte* src = patch)
            fixed (byte* dst = output)
            {
                if (oldContent.Length > 0)
                    Check(Methods.ZSTD_DCtx_refPrefix(dctx, old, (nuint)oldContent.Length), "prefix", integrity: true);
                // One frame, fully decoded into a buffer of exactly the expected size: a frame that would grow
                // beyond it fails with dstSize_tooSmall instead of allocating.
                written = Methods.ZSTD_decompressDCtx(dctx, dst, (nuint)output.Length, src, (nuint)patch.Length);
            }
            Check(written, "decompress", integrity: true);
            if ((long)written != expectedLength)
                throw new Validation.IntegrityException($"patch produced {written} bytes, {expectedLength} expected.");
            return output;
        }
        finally
        {
            Methods.ZSTD_freeDCtx(dctx);
        }
    }

    /// <summary>
    /// Sets up <paramref name="dctx"/> to decode one frame as a stream straight into a caller's output buffer that directly
    /// follows <paramref name="prefix"/> in memory: window bounded by <paramref name="windowLog"/>, the prefix referenced
    /// raw, and a stable output buffer so zstd allocates no window buffer (the output already holds the history).
    /// </summary>
    internal static void PrepareStreamDecoder(ZSTD_DCtx_s* dctx, ReadOnlySpan<byte> prefix, int windowLog)
    {
        if (windowLog is < MinWindowLog or > MaxWindowLog)
            throw new Validation.IntegrityException($"patch window log {windowLog} is outside {MinWindowLog} .. {MaxWindowLog}.");
        Check(Methods.ZSTD_DCtx_setParameter(dctx, ZSTD_dParameter.ZSTD_d_windowLogMax, windowLog), "windowLogMax", integrity: true);
        // ZSTD_d_stableOutBuffer: the output buffer is the same, large enough and untouched between calls.
        Check(Methods.ZSTD_DCtx_setParameter(dctx, ZSTD_dParameter.ZSTD_d_experimentalParam2, 1), "stable output buffer", integrity: true);
        if (prefix.Length > 0)
            fixed (byte* p = prefix)
                Check(Methods.ZSTD_DCtx_refPrefix(dctx, p, (nuint)prefix.Length), "prefix", integrity: true);
    }

    /// <summary>
    /// Feeds all of <paramref name="input"/> to a decoder set up by <see cref="PrepareStreamDecoder"/>; returns 0 once the
    /// frame is complete (zstd's hint otherwise). Input left over after the frame's end, an output that would overflow,
    /// or corrupt data throws <see cref="Validation.IntegrityException"/>.
    /// </summary>
    internal static nuint DecodeStreamInput(ZSTD_DCtx_s* dctx, ReadOnlySpan<byte> input, ZSTD_outBuffer_s* output)
    {
        fixed (byte* src = input)
        {
            var inBuffer = new ZSTD_inBuffer_s { src = src, size = (nuint)input.Length, pos = 0 };
            nuint hint = 1;
            while (inBuffer.pos < inBuffer.size)
            {
                var before = inBuffer.pos;
                var outBefore = output->pos;
                hint = Methods.ZSTD_decompressStream(dctx, output, &inBuffer);
                Check(hint, "decompress", integrity: true);
                if (hint == 0 && inBuffer.pos < inBuffer.size)
                    throw new Validation.IntegrityException($"{inBuffer.size - inBuffer.pos} bytes follow the end of the zstd frame.");
                if (inBuffer.pos == before && output->pos == outBefore)
                    throw new Validation.IntegrityException("the zstd frame decodes to more bytes than the stream declares.");
            }
            // Input consumed: zstd may still hold decoded bytes to flush into the (stable) output.
            while (hint != 0)
            {
                var outBefore = output->pos;
                hint = Methods.ZSTD_decompressStream(dctx, output, &inBuffer);
                Check(hint, "decompress", integrity: true);
                if (output->pos == outBefore) break;
            }
            return hint;
        }
    }

    private static void Check(nuint code, string what, bool integrity = false)
    {
        if (!Methods.ZSTD_isError(code)) return;
        var message = $"zstd {what} failed: {Methods.ZSTD_getErrorName(code)}.";
        if (integrity) throw new Validation.IntegrityException(message);
        throw new InvalidOperationException(message);
    }
}
