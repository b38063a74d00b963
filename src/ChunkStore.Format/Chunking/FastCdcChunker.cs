using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Orchestrator.ChunkStore.Chunking;

/// <summary>
/// FastCDC content-defined chunking, the 2020 variant (Xia et al., "The Design of Fast Content-Defined Chunking
/// for Data Deduplication Based Storage Systems", TPDS 2020): gear rolling hash, cut-point skipping up to
/// <see cref="ChunkingOptions.Min"/>, and normalized chunking level 2 (a stricter mask before the average size,
/// a looser one after it) which narrows the size distribution around <see cref="ChunkingOptions.Avg"/>.
/// Boundaries depend only on content, so an insertion shifts only the boundaries near it.
/// Thread-safe: instances hold only immutable state.
/// </summary>
public sealed class FastCdcChunker
{
    private readonly ulong[] _gear = GearTable.Values;
    private readonly ulong _maskS;
    private readonly ulong _maskL;

    /// <summary>Creates a chunker; throws <see cref="Validation.InvalidInputException"/> for unusable options.</summary>
    public FastCdcChunker(ChunkingOptions? options = null)
    {
        Options = (options ?? ChunkingOptions.Default).Validated();
        var bits = BitOperations.Log2((uint)Options.Avg);
        // The gear hash shifts left, so the high bits depend on the longest window of input bytes (up to 64);
        // masks use the top bits. Level-2 normalization: 2 more bits before avg, 2 fewer after.
        _maskS = TopBits(bits + 2);
        _maskL = TopBits(bits - 2);
    }

    /// <summary>The size bounds in use.</summary>
    public ChunkingOptions Options { get; }

    private static ulong TopBits(int n) => n <= 0 ? 0 : ulong.MaxValue << (64 - n);

    /// <summary>
    /// Length of the first chunk of <paramref name="data"/>. The caller passes at least <see cref="ChunkingOptions.Max"/>
    /// bytes unless the data ends sooner (then the rest of the data is all there is).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: skip tier-0 code
    public int NextCut(ReadOnlySpan<byte> data)
    {
        var min = Options.Min;
        var n = data.Length;
        if (n <= min) return n;
        if (n > Options.Max) n = Options.Max;
        var normal = Options.Avg < n ? Options.Avg : n;
        // Hot loop: unchecked references instead of span/array indexing (bounds are guaranteed by n <= data.Length
        // and byte values < 256), so the JIT emits no bounds checks in the hottest loop of publishing.
        ref var d = ref MemoryMarshal.GetReference(data);
        ref var g = ref MemoryMarshal.GetArrayDataReference(_gear);
        ulong fp = 0;
        var i = min;
        var maskS = _maskS;
        var maskL = _maskL;
        for (; i < normal; i++)
        {
            fp = (fp << 1) + Unsafe.Add(ref g, Unsafe.Add(ref d, i));
            if ((fp & maskS) == 0) return i + 1;
        }
        for (; i < n; i++)
        {
            fp = (fp << 1) + Unsafe.Add(ref g, Unsafe.Add(ref d, i));
            if ((fp & maskL) == 0) return i + 1;
        }
        return n;
    }

    /// <summary>
    /// Streams the chunks of <paramref name="stream"/>. Each yielded memory is only valid until the next
    /// iteration step (the buffer is reused), so memory stays bounded by one buffer of about 2 x max regardless
    /// of the stream's length. Copy what you keep.
    /// </summary>
    public IEnumerable<ReadOnlyMemory<byte>> Chunks(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var buffer = new byte[BufferSize];
        int start = 0, end = 0;
        var eof = false;
        while (true)
        {
            if (!eof && end - start < Options.Max)
            {
                Compact(buffer, ref start, ref end);
                while (end < buffer.Length)
                {
                    var read = stream.Read(buffer, end, buffer.Length - end);
                    if (read == 0) { eof = true; break; }
                    end += read;
                }
            }
            if (start == end) yield break;
            var cut = NextCut(buffer.AsSpan(start, end - start));
            yield return buffer.AsMemory(start, cut);
            start += cut;
        }
    }

    /// <summary>Bytes of buffer one streaming pass holds: twice max, at least 1 MiB (fewer, larger reads).</summary>
    public int BufferSize => Math.Max(2 * Options.Max, 1024 * 1024);

    private static void Compact(byte[] buffer, ref int start, ref int end)
    {
        if (start == 0) return;
        Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
        end -= start;
        start = 0;
    }
}
