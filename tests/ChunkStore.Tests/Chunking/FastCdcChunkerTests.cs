using System.Diagnostics;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Tests.Chunking;

public class FastCdcChunkerTests
{
    private static readonly ChunkingOptions Small = new(1024, 4096, 16384);

    private static List<byte[]> ChunksOf(byte[] data, ChunkingOptions options) =>
        new FastCdcChunker(options).Chunks(new MemoryStream(data)).Select(c => c.ToArray()).ToList();

    [Fact]
    public void Boundaries_are_deterministic_and_cover_the_input_exactly()
    {
        var data = TestData.Random(1_000_000, 1);
        var a = ChunksOf(data, Small);
        var b = ChunksOf(data, Small);
        Assert.Equal(a.Select(c => c.Length), b.Select(c => c.Length));
        Assert.Equal(data, a.SelectMany(c => c).ToArray());
        Assert.True(a.Count > 100, $"expected many chunks, got {a.Count}");
    }

    [Fact]
    public void Sizes_stay_within_min_and_max_and_average_near_avg()
    {
        var data = TestData.Random(4_000_000, 2);
        var chunks = ChunksOf(data, Small);
        foreach (var c in chunks.Take(chunks.Count - 1))
            Assert.InRange(c.Length, Small.Min, Small.Max);
        Assert.InRange(chunks[^1].Length, 1, Small.Max);
        var mean = chunks.Average(c => c.Length);
        Assert.InRange(mean, Small.Avg * 0.6, Small.Avg * 1.6);
    }

    [Fact]
    public void Insertion_shifts_only_local_boundaries()
    {
        var data = TestData.Random(2_000_000, 3);
        var inserted = data[..1_000_000].Concat(TestData.Random(100, 4)).Concat(data[1_000_000..]).ToArray();
        var before = ChunksOf(data, Small).Select(Convert.ToHexString).ToHashSet();
        var after = ChunksOf(inserted, Small).Select(Convert.ToHexString).ToList();
        var changed = after.Count(c => !before.Contains(c));
        // Only the chunk(s) around the insertion differ; everything before and after is shared.
        Assert.InRange(changed, 1, 3);
    }

    [Fact]
    public void Streaming_matches_whole_buffer_cutting_regardless_of_read_sizes()
    {
        var data = TestData.Random(700_000, 5);
        var chunker = new FastCdcChunker(Small);
        var expected = new List<int>();
        var offset = 0;
        while (offset < data.Length)
        {
            var cut = chunker.NextCut(data.AsSpan(offset, Math.Min(Small.Max, data.Length - offset)));
            expected.Add(cut);
            offset += cut;
        }
        var streamed = chunker.Chunks(new TrickleStream(data, 777)).Select(c => c.Length).ToList();
        Assert.Equal(expected, streamed);
    }

    [Fact]
    public void Empty_and_tiny_inputs()
    {
        Assert.Empty(ChunksOf([], Small));
        Assert.Equal([10], ChunksOf(new byte[10], Small).Select(c => c.Length));
    }

    [Fact]
    public void Large_generated_stream_is_chunked_with_bounded_memory()
    {
        // 256 MiB produced on the fly, never materialised: the chunker must not buffer it. Allocations are
        // measured on this thread only (the sync enumerator runs here), so parallel tests cannot disturb it.
        const long size = 1L << 28;
        var chunker = new FastCdcChunker();
        var before = GC.GetAllocatedBytesForCurrentThread();
        long total = 0, count = 0;
        foreach (var chunk in chunker.Chunks(new GeneratedStream(size)))
        {
            total += chunk.Length;
            count++;
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(size, total);
        Assert.True(allocated < 4L * 1024 * 1024, $"chunking 256 MiB allocated {allocated} bytes");
        Assert.InRange(count, size / (256 * 1024), size / (16 * 1024));
    }

    [Theory]
    [InlineData(32, 4096, 16384)]
    [InlineData(4096, 4096, 16384)]
    [InlineData(1024, 5000, 16384)]
    [InlineData(1024, 4096, 4096)]
    [InlineData(1024, 4096, 32 * 1024 * 1024)]
    public void Invalid_options_are_rejected(int min, int avg, int max)
    {
        Assert.Throws<InvalidInputException>(() => new FastCdcChunker(new ChunkingOptions(min, avg, max)));
    }

    /// <summary>Returns at most <c>step</c> bytes per read, like a slow network or pipe.</summary>
    private sealed class TrickleStream(byte[] data, int step) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, step));
    }

    /// <summary>A long stream of pseudo-random bytes generated per read (xorshift), never held in memory.</summary>
    private sealed class GeneratedStream(long length) : Stream
    {
        private long _position;
        private ulong _state = 0x9E3779B97F4A7C15;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            Span<byte> word = stackalloc byte[8];
            for (var i = 0; i < n; i += 8)
            {
                _state ^= _state << 13; _state ^= _state >> 7; _state ^= _state << 17;
                BitConverter.TryWriteBytes(word, _state);
                word[..Math.Min(8, n - i)].CopyTo(buffer.AsSpan(offset + i));
            }
            _position += n;
            return n;
        }
    }
}
