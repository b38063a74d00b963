using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Validation;
using ZstdSharp.Unsafe;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// Device side of a whole-release delta (<see cref="ReleaseStream"/>). The reference is assembled once in a file
/// (each source file that matches its hash at its offset, zeros for one that does not) and memory-mapped, so the
/// source never enters the managed heap; frames are then decoded one at a time. The managed memory a frame needs is
/// <see cref="HeapNeeded"/> (its decoded piece plus its stored object); the mapped reference is
/// <see cref="ReleaseStream.SourceLength"/> bytes of file-backed pages the kernel can drop and re-read.
/// Nothing here trusts a decoded byte: the caller verifies every file's SHA-256 before using it.
/// </summary>
public static unsafe class ReleaseDeltaApplier
{
    /// <summary>
    /// Managed bytes held while one frame of <paramref name="stream"/> is applied: the stored object and the decoded piece;
    /// for a <see cref="ReleaseStream.OneFrame"/> stream, one stored object, its plaintext and the copy buffer the decoded
    /// bytes pass through on their way to the files (the decoder writes straight into the mapped file).
    /// </summary>
    public static long HeapNeeded(ReleaseStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var largest = stream.Frames.Count == 0 ? 0 : stream.Frames.Max(f => (long)f.Stored);
        if (stream.OneFrame) return largest + (stream.Frames.Count == 0 ? 0 : stream.Frames.Max(f => (long)f.Length)) + OneFrameCopyBuffer;
        return stream.FrameContent + largest;
    }

    /// <summary>Bytes of decoded stream copied out of the mapped file at a time in a one-frame stream (a transform is undone on the copy, never on the bytes later input still references).</summary>
    public const int OneFrameCopyBuffer = 1 << 20;

    /// <summary>Where each release file lies in the target stream: (file, stream offset).</summary>
    public static IReadOnlyList<(DeltaFile File, long Offset)> Layout(DeltaManifest delta)
    {
        ArgumentNullException.ThrowIfNull(delta);
        var layout = new List<(DeltaFile, long)>();
        long at = 0;
        foreach (var f in delta.ReleaseFiles)
        {
            layout.Add((f, at));
            at += f.Size;
        }
        return layout;
    }

    /// <summary>
    /// Indexes of the frames to apply for the files <paramref name="wanted"/> accepts: those holding any of their bytes,
    /// and in a chained stream every frame before the last of those too (a frame's prefix includes them).
    /// </summary>
    public static IReadOnlySet<int> FramesFor(DeltaManifest delta, Func<DeltaFile, bool> wanted)
    {
        ArgumentNullException.ThrowIfNull(delta);
        ArgumentNullException.ThrowIfNull(wanted);
        var frames = new SortedSet<int>();
        if (delta.Release!.OneFrame)
        {
            // Where a file's bytes lie in the compressed frame is unknown, and every byte may copy from earlier ones: all objects.
            if (Layout(delta).Any(l => l.File.Size > 0 && wanted(l.File)))
                for (var i = 0; i < delta.Release.Frames.Count; i++) frames.Add(i);
            return frames;
        }
        var piece = (long)delta.Release!.FrameContent;
        foreach (var (f, offset) in Layout(delta))
        {
            if (f.Size == 0 || !wanted(f)) continue;
            for (var i = offset / piece; i <= (offset + f.Size - 1) / piece; i++) frames.Add((int)i);
        }
        if (delta.Release.Chained && frames.Count > 0)
            for (var i = 0; i < frames.Max; i++) frames.Add(i);
        return frames;
    }

    /// <summary>
    /// Writes the reference into <paramref name="referencePath"/>: every source at its offset, copied from the path
    /// <paramref name="localSource"/> gives (a local file whose content has the source's hash and size), zeros where it
    /// gives null or whose bytes do not hash to the source's SHA-256. Returns the bytes copied from local files.
    /// </summary>
    public static long WriteReference(ReleaseStream stream, Func<ReleaseSource, string?> localSource, string referencePath)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(localSource);
        long copied = 0;
        using var output = new FileStream(referencePath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        output.SetLength(stream.SourceLength);
        var offsets = stream.SourceOffsets();
        var buffer = new byte[1 << 16];
        for (var i = 0; i < stream.Sources.Count; i++)
        {
            var source = stream.Sources[i];
            if (source.Size == 0 || localSource(source) is not { } path) continue;
            using var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            if (input.Length != source.Size) continue;
            output.Seek(offsets[i], SeekOrigin.Begin);
            // The local file is hashed as it is copied (before its branch transform): one changed since the inventory
            // was taken is replaced by zeros again.
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var filter = source.Filter == BranchFilterKind.None ? null : new BranchFilter(source.Filter, encode: true);
            int n, pending = 0;
            long written = 0;
            while (written < source.Size && (n = input.Read(buffer, pending, (int)Math.Min(buffer.Length - pending, source.Size - written))) > 0)
            {
                hash.AppendData(buffer, pending, n);
                var have = pending + n;
                var final = filter?.Process(buffer.AsSpan(0, have)) ?? have;
                output.Write(buffer, 0, final);
                pending = have - final;
                Buffer.BlockCopy(buffer, final, buffer, 0, pending);
                written += n;
            }
            output.Write(buffer, 0, pending);
            if (written == source.Size && Convert.ToHexStringLower(hash.GetHashAndReset()) == source.Sha256)
            {
                copied += source.Size;
                continue;
            }
            Array.Clear(buffer);
            output.Seek(offsets[i], SeekOrigin.Begin);
            for (long left = source.Size; left > 0; left -= Math.Min(left, buffer.Length)) output.Write(buffer, 0, (int)Math.Min(left, buffer.Length));
        }
        output.Flush(flushToDisk: false);
        return copied;
    }

    /// <summary>
    /// Decodes each frame in <paramref name="frames"/> against the memory-mapped <paramref name="referencePath"/> and
    /// hands each release file's overlapping piece to <paramref name="write"/> (file, offset in the file, bytes).
    /// Objects come from <paramref name="readObject"/> (stored bytes, or null when absent). Returns the frames that
    /// could not be used (missing, not decodable); the files they touch must come from elsewhere. In a chained stream each
    /// decoded piece is also written into the mapped file after the sources, where the next frames' prefix reads it; a
    /// frame that failed leaves zeros there, so later frames copying from it produce bytes their files' hashes refuse.
    /// </summary>
    public static IReadOnlySet<int> Apply(DeltaManifest delta, string referencePath, IReadOnlySet<int> frames, Func<ChunkId, byte[]?> readObject,
        ContentKey key, Action<DeltaFile, long, ReadOnlySpan<byte>> write, Action<int, string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(delta);
        ArgumentNullException.ThrowIfNull(readObject);
        ArgumentNullException.ThrowIfNull(write);
        var stream = delta.Release ?? throw new ArgumentException("the delta has no whole-release stream", nameof(delta));
        var layout = Layout(delta);
        var streamLength = layout.Count == 0 ? 0 : layout[^1].Offset + layout[^1].File.Size;
        var failed = new HashSet<int>();
        var unfilters = new Dictionary<string, Unfiltering>(StringComparer.Ordinal);
        var sourceLength = stream.SourceLength;
        var length = sourceLength + (stream.Chained ? streamLength : 0);
        var access = stream.Chained ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        if (stream.Chained)
        {
            // The decoded stream goes after the sources (zeros until its frame is decoded); file-backed, off the heap.
            using var extend = new FileStream(referencePath, FileMode.Open, FileAccess.Write, FileShare.Read);
            extend.SetLength(length);
        }
        using var map = length == 0 ? null : MemoryMappedFile.CreateFromFile(referencePath, FileMode.Open, null, 0, access);
        using var view = map?.CreateViewAccessor(0, length, access);
        byte* basePointer = null;
        view?.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        try
        {
            var mapped = basePointer == null ? Span<byte>.Empty : new Span<byte>(basePointer + view!.PointerOffset, checked((int)length));
            if (stream.OneFrame)
                return ApplyOneFrame(delta, mapped, frames, readObject, key, layout, unfilters, write, log);
            // In stream order: a transformed file's pieces are undone in sequence.
            foreach (var index in frames.Order())
            {
                var part = stream.Frames[index];
                var start = (long)index * stream.FrameContent;
                var pieceLength = Math.Min(stream.FrameContent, streamLength - start);
                byte[] piece;
                try
                {
                    var stored = readObject(part.Id) ?? throw new IntegrityException($"release delta object {index} ({part.Id}) is not available");
                    var patch = ChunkCodec.Decode(stored, key, part.Length, part.Id);
                    var prefix = mapped[..(int)(stream.Chained ? sourceLength + start : sourceLength)];
                    piece = PatchCodec.Apply(prefix, patch, pieceLength, stream.WindowLog);
                }
                catch (IntegrityException e)
                {
                    log?.Invoke(index, e.Message);
                    failed.Add(index);
                    continue;
                }
                // Before the branch transform is undone in place: the next frames reference the stream as coded.
                if (stream.Chained) piece.CopyTo(mapped[(int)(sourceLength + start)..]);
                foreach (var (file, offset) in layout)
                {
                    var from = Math.Max(offset, start);
                    var to = Math.Min(offset + file.Size, start + pieceLength);
                    if (from >= to) continue;
                    var bytes = piece.AsSpan((int)(from - start), (int)(to - from));
                    // (Unfilter rewrites the piece in place; each byte of it belongs to exactly one file.)
                    if (file.Filter == BranchFilterKind.None) write(file, from - offset, bytes);
                    else Unfilter(file, from - offset, bytes, unfilters, write);
                }
            }
        }
        finally
        {
            if (basePointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        return failed;
    }

    /// <summary>
    /// Decodes a <see cref="ReleaseStream.OneFrame"/> stream: the objects' plaintexts are fed in order to one streaming
    /// zstd decoder whose output is the mapped file right after the reference (a stable output buffer, so zstd keeps no
    /// window buffer of its own and matches reach back into the reference as one contiguous prefix), with its window
    /// bounded by the stream's declared <see cref="ReleaseStream.WindowLog"/>. After each object the newly decoded bytes are
    /// handed to the files. An object that is missing, fails its tag or does not decode stops the stream there: it and every
    /// later object are returned as failed (the files not complete by then must come from elsewhere).
    /// </summary>
    private static IReadOnlySet<int> ApplyOneFrame(DeltaManifest delta, Span<byte> mapped, IReadOnlySet<int> objects, Func<ChunkId, byte[]?> readObject,
        ContentKey key, IReadOnlyList<(DeltaFile File, long Offset)> layout, Dictionary<string, Unfiltering> unfilters,
        Action<DeltaFile, long, ReadOnlySpan<byte>> write, Action<int, string>? log)
    {
        var stream = delta.Release!;
        var failed = new SortedSet<int>();
        if (objects.Count == 0) return failed;
        var sourceLength = stream.SourceLength;
        var streamLength = mapped.Length - sourceLength;
        var output = mapped[(int)sourceLength..];
        var copy = new byte[OneFrameCopyBuffer];
        long emitted = 0;
        var dctx = Methods.ZSTD_createDCtx();
        if (dctx == null) throw new OutOfMemoryException("zstd could not allocate a decompression context.");
        var index = 0;
        try
        {
            PatchCodec.PrepareStreamDecoder(dctx, mapped[..(int)sourceLength], stream.WindowLog);
            var outBuffer = new ZSTD_outBuffer_s { dst = null, size = (nuint)streamLength, pos = 0 };
            nuint remaining = 1;
            fixed (byte* dst = output)
            {
                outBuffer.dst = dst;
                for (; index < stream.Frames.Count; index++)
                {
                    var part = stream.Frames[index];
                    var stored = readObject(part.Id) ?? throw new IntegrityException($"release delta object {index} ({part.Id}) is not available");
                    var plain = ChunkCodec.Decode(stored, key, part.Length, part.Id);
                    if (remaining == 0) throw new IntegrityException($"release delta object {index} ({part.Id}) follows the end of the frame");
                    remaining = PatchCodec.DecodeStreamInput(dctx, plain, &outBuffer);
                    Emit(output, emitted, (long)outBuffer.pos, layout, copy, unfilters, write);
                    emitted = (long)outBuffer.pos;
                }
            }
            if (remaining != 0 || emitted != streamLength)
                throw new IntegrityException($"release delta objects end after {emitted} of {streamLength} stream bytes, before the frame is complete");
        }
        catch (IntegrityException e)
        {
            var at = Math.Min(index, stream.Frames.Count - 1);
            log?.Invoke(at, e.Message);
            for (var i = at; i < stream.Frames.Count; i++) failed.Add(i);
        }
        finally
        {
            Methods.ZSTD_freeDCtx(dctx);
        }
        return failed;
    }

    /// <summary>Hands the decoded stream bytes [<paramref name="from"/>, <paramref name="to"/>) to their files through the copy buffer.</summary>
    private static void Emit(ReadOnlySpan<byte> decoded, long from, long to, IReadOnlyList<(DeltaFile File, long Offset)> layout, byte[] copy,
        Dictionary<string, Unfiltering> unfilters, Action<DeltaFile, long, ReadOnlySpan<byte>> write)
    {
        for (var start = from; start < to; start += copy.Length)
        {
            var length = (int)Math.Min(copy.Length, to - start);
            decoded.Slice((int)start, length).CopyTo(copy);
            foreach (var (file, offset) in layout)
            {
                var a = Math.Max(offset, start);
                var b = Math.Min(offset + file.Size, start + length);
                if (a >= b) continue;
                var bytes = copy.AsSpan((int)(a - start), (int)(b - a));
                if (file.Filter == BranchFilterKind.None) write(file, a - offset, bytes);
                else Unfilter(file, a - offset, bytes, unfilters, write);
            }
        }
    }

    /// <summary>Undoes a file's branch transform piece by piece, holding back the few bytes a transform decision still needs.</summary>
    private sealed class Unfiltering(BranchFilter filter)
    {
        public BranchFilter Filter { get; } = filter;
        public long Emitted { get; set; }
        public byte[] Tail { get; set; } = [];
    }

    /// <summary>
    /// Undoes the transform of one piece of <paramref name="file"/> in place in the decoded frame, so the managed memory
    /// stays <see cref="HeapNeeded"/>: only the held-back tail (at most 5 bytes) and the first bytes of the next piece
    /// pass through a small bridge buffer.
    /// </summary>
    private static void Unfilter(DeltaFile file, long offset, Span<byte> bytes, Dictionary<string, Unfiltering> unfilters,
        Action<DeltaFile, long, ReadOnlySpan<byte>> write)
    {
        if (!unfilters.TryGetValue(file.Path, out var state))
        {
            // A piece that does not start the file follows a frame that failed: the file comes from elsewhere.
            if (offset != 0) return;
            unfilters[file.Path] = state = new Unfiltering(new BranchFilter(file.Filter, encode: false));
        }
        var tail = state.Tail;
        if (offset != state.Emitted + tail.Length) return;
        var last = offset + bytes.Length == file.Size;
        var bridge = new byte[tail.Length + Math.Min(bytes.Length, 16)];
        tail.CopyTo(bridge, 0);
        bytes[..(bridge.Length - tail.Length)].CopyTo(bridge.AsSpan(tail.Length));
        var final = state.Filter.Process(bridge);
        var bridged = bridge.Length - tail.Length == bytes.Length;
        if (bridged)
        {
            // The whole piece fit the bridge.
            if (last) final = bridge.Length;
            write(file, state.Emitted, bridge.AsSpan(0, final));
            state.Emitted += final;
            state.Tail = bridge[final..];
            return;
        }
        // final >= tail length here (the bridge has 16 bytes past the tail and a transform consumes at most 6 at a time).
        write(file, state.Emitted, bridge.AsSpan(0, final));
        state.Emitted += final;
        var rest = bytes[(final - tail.Length)..];
        var done = state.Filter.Process(rest);
        if (last) done = rest.Length;
        write(file, state.Emitted, rest[..done]);
        state.Emitted += done;
        state.Tail = rest[done..].ToArray();
    }
}
