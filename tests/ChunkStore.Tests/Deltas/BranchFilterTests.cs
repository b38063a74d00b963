using System.Buffers.Binary;
using Orchestrator.ChunkStore.Deltas;
using Orchestrator.ChunkStore.Tests.Support;

namespace Orchestrator.ChunkStore.Tests.Deltas;

/// <summary>The branch transform of whole-release deltas (schema 3): exact inverse, streamed in any pieces, and the point of it.</summary>
public sealed class BranchFilterTests
{
    [Theory]
    [InlineData(BranchFilterKind.X86)]
    [InlineData(BranchFilterKind.Arm64)]
    [InlineData(BranchFilterKind.X64)]
    public void Decoding_undoes_encoding_for_any_input_and_any_pieces(BranchFilterKind kind)
    {
        List<byte[]> inputs = [TestData.Random(200_003, 11), ExecutableSamples.X86Program(150_000, 333), [], [0xE8], [0xE8, 0, 0, 0], [0xE8, 1, 2, 3, 0xFF, 0xE9]];
        // Dense candidates: every byte a call opcode or a sign byte, so overlapping candidates are the rule.
        inputs.Add(new Random(3).GetItems<byte>([0xE8, 0xE9, 0x00, 0xFF, 0x94, 0x97], 100_000));
        // Dense RIP-relative candidates overlapping calls (x86-64).
        if (kind == BranchFilterKind.X64) inputs.Add(new Random(4).GetItems<byte>([0xE8, 0x8B, 0x8D, 0xFF, 0x05, 0x15, 0x25, 0x3D, 0x00, 0x48], 100_000));
        foreach (var input in inputs)
        {
            var encoded = input.ToArray();
            BranchFilter.Transform(kind, encode: true, encoded);
            if (input.Length > 10_000) Assert.NotEqual(input, encoded);
            var whole = encoded.ToArray();
            BranchFilter.Transform(kind, encode: false, whole);
            Assert.Equal(input, whole);
            Assert.Equal(input, Streamed(kind, encoded, new Random(input.Length)));
        }
    }

    /// <summary>Decodes <paramref name="encoded"/> fed in random pieces, re-presenting the unprocessed tail as the contract says.</summary>
    private static byte[] Streamed(BranchFilterKind kind, byte[] encoded, Random random)
    {
        var filter = new BranchFilter(kind, encode: false);
        var output = new List<byte>();
        var pending = new List<byte>();
        for (var at = 0; at < encoded.Length;)
        {
            var n = Math.Min(encoded.Length - at, random.Next(1, 9000));
            pending.AddRange(encoded.AsSpan(at, n).ToArray());
            at += n;
            var buffer = pending.ToArray();
            var final = filter.Process(buffer);
            Assert.InRange(buffer.Length - final, 0, 5);
            output.AddRange(buffer.Take(final));
            pending = buffer.Skip(final).ToList();
        }
        output.AddRange(pending);
        return [.. output];
    }

    [Fact]
    public void Calls_into_code_that_did_not_move_stay_identical_after_code_is_inserted_before_them()
    {
        var v1 = ExecutableSamples.X86Program(100_000, 0);
        var v2 = ExecutableSamples.X86Program(100_000, 1000);
        // Raw: every call after the insertion point has a new displacement. Transformed: it names the same target.
        var late = 100_000 / 4 + 1000 + 4096;
        int Same(byte[] a, byte[] b) => Enumerable.Range(0, a.Length - late).Count(i => a[late - 1000 + i] == b[late + i]);
        var rawSame = Same(v1, v2);
        BranchFilter.Transform(BranchFilterKind.X86, encode: true, v1);
        BranchFilter.Transform(BranchFilterKind.X86, encode: true, v2);
        Assert.True(Same(v1, v2) > rawSame + (v1.Length - late) / 37, $"{Same(v1, v2)} equal bytes transformed, {rawSame} raw");
    }

    [Fact]
    public void Detect_names_x86_x86_64_and_arm64_executables_and_nothing_else()
    {
        byte[] Elf(ushort machine)
        {
            var h = new byte[64];
            h[0] = 0x7F; h[1] = (byte)'E'; h[2] = (byte)'L'; h[3] = (byte)'F'; h[4] = 2; h[5] = 1;
            BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(18), machine);
            return h;
        }
        byte[] Pe(ushort machine)
        {
            var h = new byte[256];
            h[0] = (byte)'M'; h[1] = (byte)'Z';
            BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(0x3C), 0x80);
            h[0x80] = (byte)'P'; h[0x81] = (byte)'E';
            BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(0x84), machine);
            return h;
        }
        byte[] MachO(uint cpu)
        {
            var h = new byte[32];
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0xFEEDFACF);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), cpu);
            return h;
        }
        Assert.Equal(BranchFilterKind.X64, BranchFilter.Detect(Elf(62)));
        Assert.Equal(BranchFilterKind.X86, BranchFilter.Detect(Elf(3)));
        Assert.Equal(BranchFilterKind.Arm64, BranchFilter.Detect(Elf(183)));
        Assert.Equal(BranchFilterKind.None, BranchFilter.Detect(Elf(40)));
        Assert.Equal(BranchFilterKind.X64, BranchFilter.Detect(Pe(0x8664)));
        Assert.Equal(BranchFilterKind.X86, BranchFilter.Detect(Pe(0x14C)));
        Assert.Equal(BranchFilterKind.Arm64, BranchFilter.Detect(Pe(0xAA64)));
        Assert.Equal(BranchFilterKind.X64, BranchFilter.Detect(MachO(0x01000007)));
        Assert.Equal(BranchFilterKind.X86, BranchFilter.Detect(MachO(7)));
        Assert.Equal(BranchFilterKind.Arm64, BranchFilter.Detect(MachO(0x0100000C)));
        Assert.Equal(BranchFilterKind.None, BranchFilter.Detect("#!/bin/sh\necho hello, world, this is a script\n"u8));
        Assert.Equal(BranchFilterKind.None, BranchFilter.Detect("MZ"u8));
        Assert.Equal(BranchFilterKind.None, BranchFilter.Detect([]));
    }

    [Fact]
    public void Rip_relative_references_to_data_that_did_not_move_stay_identical_with_the_x86_64_transform()
    {
        // lea rax, [rip + d] every 41 bytes of code, naming a table near the start of the file (like data that sits
        // before the code); code is inserted after the first quarter, so every later reference gets a new displacement.
        static byte[] Program(int inserted)
        {
            const int size = 120_000;
            var code = new Random(5).GetItems<byte>([0x01, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70], size);
            var split = size / 4;
            var positions = Enumerable.Range(0, (size - 4096 - 7) / 41).Select(k => 4096 + 41 * k).Where(at => at + 7 <= split || at >= split).ToList();
            var program = code.Take(split).Concat(new byte[inserted]).Concat(code.Skip(split)).ToArray();
            foreach (var original in positions)
            {
                var at = original >= split ? original + inserted : original;
                program[at] = 0x48; program[at + 1] = 0x8D; program[at + 2] = 0x05;
                BinaryPrimitives.WriteInt32LittleEndian(program.AsSpan(at + 3), 64 + original % 512 - (at + 7));
            }
            return program;
        }
        var v1 = Program(0);
        var v2 = Program(1000);
        int Same(byte[] a, byte[] b) => Enumerable.Range(0, 80_000).Count(i => a[30_000 + i] == b[31_000 + i]);
        int Transformed(BranchFilterKind kind)
        {
            var (a, b) = (v1.ToArray(), v2.ToArray());
            BranchFilter.Transform(kind, encode: true, a);
            BranchFilter.Transform(kind, encode: true, b);
            var back = b.ToArray();
            BranchFilter.Transform(kind, encode: false, back);
            Assert.Equal(v2, back);
            return Same(a, b);
        }
        var x86 = Transformed(BranchFilterKind.X86);
        var x64 = Transformed(BranchFilterKind.X64);
        Assert.True(x64 > x86 + 80_000 / 41, $"{x64} equal bytes with x86-64, {x86} with x86");
    }
}
