using System.Runtime.InteropServices;

namespace Orchestrator.ChunkStore.Codec;

/// <summary>
/// Optional binding to the system's libzstd for compression (publishing is compression-bound, and the native
/// library is several times faster than the managed port). Absent library: <see cref="IsAvailable"/> is false
/// and the codec uses ZstdSharp. Setting ORCH_ZSTD=managed forces the managed port.
/// </summary>
internal static unsafe class NativeZstd
{
    private static readonly delegate* unmanaged<nint> CreateCCtx;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint> CompressCCtx;
    private static readonly delegate* unmanaged<nuint, uint> IsError;

    [ThreadStatic] private static nint t_context;

    static NativeZstd()
    {
        if (Environment.GetEnvironmentVariable("ORCH_ZSTD") == "managed") return;
        if (!NativeLibrary.TryLoad("libzstd.so.1", out var lib) && !NativeLibrary.TryLoad("libzstd", out lib)) return;
        if (!NativeLibrary.TryGetExport(lib, "ZSTD_createCCtx", out var create) ||
            !NativeLibrary.TryGetExport(lib, "ZSTD_compressCCtx", out var compress) ||
            !NativeLibrary.TryGetExport(lib, "ZSTD_isError", out var isError) ||
            !NativeLibrary.TryGetExport(lib, "ZSTD_versionString", out var version))
            return;
        CreateCCtx = (delegate* unmanaged<nint>)create;
        CompressCCtx = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint>)compress;
        IsError = (delegate* unmanaged<nuint, uint>)isError;
        Version = Marshal.PtrToStringUTF8(((delegate* unmanaged<nint>)version)()) ?? "?";
        IsAvailable = true;
    }

    public static bool IsAvailable { get; }

    public static string Version { get; } = "";

    /// <summary>One-shot compression into <paramref name="destination"/> (sized by the compress bound).</summary>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        // One context per thread, kept for the thread's life: creating one per chunk would cost more than the
        // compression of a small chunk.
        if (t_context == 0) t_context = CreateCCtx();
        if (t_context == 0) throw new OutOfMemoryException("ZSTD_createCCtx failed.");
        nuint written;
        fixed (byte* src = source)
        fixed (byte* dst = destination)
            written = CompressCCtx(t_context, dst, (nuint)destination.Length, src, (nuint)source.Length, level);
        if (IsError(written) != 0) throw new InvalidOperationException($"ZSTD_compressCCtx failed with code {(long)written}.");
        return (int)written;
    }
}
