using System.Buffers.Binary;

namespace Orchestrator.ChunkStore.Tests.Support;

/// <summary>Synthetic machine code for branch-transform tests (linked into tests/EndToEnd.Tests: one copy).</summary>
public static class ExecutableSamples
{
    /// <summary>
    /// A little x86-64 ELF program: 16 hot functions at the start (where a linker puts stubs and runtime helpers), then
    /// code that calls them, <paramref name="inserted"/> bytes of new code after the first quarter.
    /// </summary>
    public static byte[] X86Program(int size, int inserted, int seed = 7)
    {
        var random = new Random(seed);
        var code = new byte[size];
        random.NextBytes(code);
        var header = new byte[64];
        header[0] = 0x7F; header[1] = (byte)'E'; header[2] = (byte)'L'; header[3] = (byte)'F'; header[4] = 2; header[5] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(18), 62);
        header.CopyTo(code, 0);
        // Calls every 37 bytes after the hot functions; then new code is inserted and the linker moves the later calls,
        // fixing their displacements so they still reach the same hot function.
        var calls = new Random(seed + 2);
        var targets = new Dictionary<int, int>();
        for (var at = 4096; at + 5 <= size; at += 37)
        {
            code[at] = 0xE8;
            targets[at] = 128 + 64 * calls.Next(16);
        }
        var split = size / 4;
        var program = code.Take(split).Concat(new Random(seed + 1).GetItems<byte>([.. Enumerable.Range(0, 256).Select(b => (byte)b)], inserted))
            .Concat(code.Skip(split)).ToArray();
        foreach (var (at, target) in targets)
        {
            var moved = at >= split ? at + inserted : at;
            BinaryPrimitives.WriteInt32LittleEndian(program.AsSpan(moved + 1), target - (moved + 5));
        }
        return program;
    }
}
