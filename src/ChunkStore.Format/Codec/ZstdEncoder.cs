using System.Runtime.InteropServices;

namespace Orchestrator.ChunkStore.Codec;

/// <summary>
/// One-shot zstd compression for chunk payloads: the system libzstd (libzstd.so.1) when it loads, else the
/// managed ZstdSharp port. Output bytes differ between the two (and between libzstd builds); that is fine because
/// nothing depends on encoder output being reproducible: agents identify plaintext by the manifest tag, and the
/// publish cache dedups by tag (docs/store-format.md). The native library is preferred because it is the cheaper
/// encoder per byte (bench/results/content.md).
/// Thread-safe: one compression context per thread.
/// </summary>
internal static unsafe class ZstdEncoder
{
    private static readonly delegate* unmanaged<nint> s_createCCtx;
    private static readonly delegate* unmanaged<nint, nuint> s_freeCCtx;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint> s_compressCCtx;
    private static readonly delegate* unmanaged<nuint, uint> s_isError;
    private static readonly delegate* unmanaged<nint, int, int, nuint> s_setParameter;
    private static readonly delegate* unmanaged<nint, byte*, nuint, nuint> s_refPrefix;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> s_compress2;

    [ThreadStatic] private static NativeContext? t_native;
    [ThreadStatic] private static ZstdSharp.Compressor? t_managed;

#pragma warning disable CA1810 // the exports must be resolved together, once; a static constructor says so plainly
    static ZstdEncoder()
    {
        if (Environment.GetEnvironmentVariable("ORCH_ZSTD") == "managed") return;
        foreach (var name in new[] { "libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd" })
        {
            if (!NativeLibrary.TryLoad(name, out var lib)) continue;
            if (NativeLibrary.TryGetExport(lib, "ZSTD_createCCtx", out var create) &&
                NativeLibrary.TryGetExport(lib, "ZSTD_freeCCtx", out var free) &&
                NativeLibrary.TryGetExport(lib, "ZSTD_compressCCtx", out var compress) &&
                NativeLibrary.TryGetExport(lib, "ZSTD_isError", out var isError))
            {
                s_createCCtx = (delegate* unmanaged<nint>)create;
                s_freeCCtx = (delegate* unmanaged<nint, nuint>)free;
                s_compressCCtx = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint>)compress;
                s_isError = (delegate* unmanaged<nuint, uint>)isError;
                // Patch-from (deltas) needs the advanced API (zstd >= 1.4); without it patches use the managed port.
                if (NativeLibrary.TryGetExport(lib, "ZSTD_CCtx_setParameter", out var setParameter) &&
                    NativeLibrary.TryGetExport(lib, "ZSTD_CCtx_refPrefix", out var refPrefix) &&
                    NativeLibrary.TryGetExport(lib, "ZSTD_compress2", out var compress2))
                {
                    s_setParameter = (delegate* unmanaged<nint, int, int, nuint>)setParameter;
                    s_refPrefix = (delegate* unmanaged<nint, byte*, nuint, nuint>)refPrefix;
                    s_compress2 = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)compress2;
                }
                LibraryName = name;
                return;
            }
            NativeLibrary.Free(lib);
        }
    }
#pragma warning restore CA1810

    /// <summary>The native library in use, or null when compressing with the managed port.</summary>
    public static string? LibraryName { get; }

    /// <summary>Largest compressed size of <paramref name="length"/> bytes (valid for both encoders).</summary>
    public static int Bound(int length) => ZstdSharp.Compressor.GetCompressBound(length);

    /// <summary>Compresses into <paramref name="destination"/> (at least <see cref="Bound"/> bytes); returns the length.</summary>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int level, bool forceManaged = false)
    {
        if (LibraryName is null || forceManaged)
        {
            var managed = t_managed ??= new ZstdSharp.Compressor(level);
            if (managed.Level != level) managed.Level = level;
            return managed.Wrap(source, destination);
        }
        var context = t_native ??= new NativeContext();
        nuint written;
        fixed (byte* src = source)
        fixed (byte* dst = destination)
            written = s_compressCCtx(context.Handle, dst, (nuint)destination.Length, src, (nuint)source.Length, level);
        if (s_isError(written) != 0)
            throw new InvalidOperationException($"libzstd failed to compress a {source.Length}-byte chunk (error code {(long)written}).");
        return (int)written;
    }

    /// <summary>True when the native library can make patch-from frames (<see cref="CompressPatchNative"/>).</summary>
    public static bool NativePatchAvailable => LibraryName is not null && s_compress2 != null;

    /// <summary>
    /// zstd patch-from with the native library: <paramref name="prefix"/> as raw-content prefix, long-distance
    /// matching, the given window log and level, content checksum when <paramref name="checksum"/>. Returns the frame
    /// length written to <paramref name="destination"/> (at least <see cref="Bound"/> of the source).
    /// </summary>
    public static int CompressPatchNative(ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> source, Span<byte> destination, int level, int windowLog,
        bool checksum = true)
    {
        if (!NativePatchAvailable) throw new InvalidOperationException("libzstd with the advanced API is not loaded.");
        var cctx = s_createCCtx();
        if (cctx == 0) throw new OutOfMemoryException("libzstd could not allocate a compression context.");
        try
        {
            // ZSTD_c_compressionLevel = 100, ZSTD_c_windowLog = 101, ZSTD_c_enableLongDistanceMatching = 160, ZSTD_c_checksumFlag = 201 (zstd.h).
            NativeCheck(s_setParameter(cctx, 100, level), "level");
            NativeCheck(s_setParameter(cctx, 101, windowLog), "windowLog");
            NativeCheck(s_setParameter(cctx, 160, 1), "long-distance matching");
            // ZSTD_c_ldmHashLog = 161, ZSTD_c_ldmMinMatch = 162, ZSTD_c_ldmBucketSizeLog = 163, ZSTD_c_ldmHashRateLog = 164:
            // pinned so the context's size is what Deltas.PatchCodec.CompressionContextBytes states, whatever libzstd's defaults.
            var ldm = Deltas.PatchCodec.LongDistanceParameters(windowLog);
            NativeCheck(s_setParameter(cctx, 161, ldm.HashLog), "ldm hash log");
            NativeCheck(s_setParameter(cctx, 162, ldm.MinMatch), "ldm min match");
            NativeCheck(s_setParameter(cctx, 163, ldm.BucketSizeLog), "ldm bucket size log");
            NativeCheck(s_setParameter(cctx, 164, ldm.HashRateLog), "ldm hash rate log");
            NativeCheck(s_setParameter(cctx, 201, checksum ? 1 : 0), "checksum");
            nuint written;
            fixed (byte* pre = prefix)
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            {
                if (prefix.Length > 0) NativeCheck(s_refPrefix(cctx, pre, (nuint)prefix.Length), "prefix");
                written = s_compress2(cctx, dst, (nuint)destination.Length, src, (nuint)source.Length);
            }
            NativeCheck(written, "compress");
            return (int)written;
        }
        finally
        {
            s_freeCCtx(cctx);
        }
    }

    private static void NativeCheck(nuint code, string what)
    {
        if (s_isError(code) != 0)
            throw new InvalidOperationException($"libzstd patch-from {what} failed (error code {(long)code}).");
    }

    /// <summary>A native compression context, freed when its thread's reference dies.</summary>
    private sealed class NativeContext
    {
        public NativeContext()
        {
            Handle = s_createCCtx();
            if (Handle == 0) throw new OutOfMemoryException("libzstd could not allocate a compression context.");
        }

        public nint Handle { get; }

        ~NativeContext() => s_freeCCtx(Handle);
    }
}
