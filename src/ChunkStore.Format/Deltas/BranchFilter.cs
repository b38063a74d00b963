using System.Buffers.Binary;

namespace Orchestrator.ChunkStore.Deltas;

/// <summary>
/// Which branch transform a whole-release delta (schema 3) applies to a file before coding it. Machine code calls
/// its functions by relative displacement, so a change that moves one function rewrites the displacement of every
/// call that crosses it; turned into absolute targets (file offsets), those calls stay byte-identical between two
/// releases and the delta coder finds them as matches.
/// </summary>
public enum BranchFilterKind
{
    /// <summary>No transform.</summary>
    None,

    /// <summary>x86 and x86-64 <c>call</c>/<c>jmp rel32</c> (opcodes E8/E9) whose displacement fits 25 signed bits.</summary>
    X86,

    /// <summary>AArch64 <c>BL imm26</c> at 4-byte aligned file offsets.</summary>
    Arm64,

    /// <summary>
    /// x86-64 (schema 4): the <see cref="X86"/> calls plus RIP-relative <c>disp32</c> operands (ModRM mod 00, r/m 101)
    /// of the common data-referencing opcodes (<c>mov</c>, <c>lea</c>, <c>cmp</c>, <c>add</c>, <c>sub</c>, <c>test</c>,
    /// <c>movsxd</c>, <c>call</c>/<c>jmp</c> through memory), turned into absolute targets the same way.
    /// </summary>
    X64,
}

/// <summary>
/// The branch transform of one file, streamed: <see cref="Process"/> transforms bytes in place and keeps the position
/// and decision state, so a file can be fed in pieces of any size (the caller re-presents the unprocessed tail).
/// Encoding then decoding gives the input back for every input: a decision at an offset depends only on bytes the
/// transform never rewrites there (opcode bytes) and on bytes both sides see unchanged, which is what lets a device undo it.
/// </summary>
public sealed class BranchFilter
{
    private readonly BranchFilterKind _kind;
    private readonly bool _encode;
    private long _position;
    private long _blockedUntil;

    /// <summary>A transform of <paramref name="kind"/>, forward (<paramref name="encode"/>) or back.</summary>
    public BranchFilter(BranchFilterKind kind, bool encode)
    {
        _kind = kind;
        _encode = encode;
    }

    /// <summary>
    /// The transform suited to a file starting with <paramref name="header"/>: x86 for ELF, PE and Mach-O files for
    /// x86, X64 for those for x86-64, Arm64 for those for AArch64, none for anything else (text, data, other machines).
    /// </summary>
    public static BranchFilterKind Detect(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 20 && header[0] == 0x7F && header[1] == (byte)'E' && header[2] == (byte)'L' && header[3] == (byte)'F' && header[5] == 1)
            return BinaryPrimitives.ReadUInt16LittleEndian(header[18..]) switch { 3 => BranchFilterKind.X86, 62 => BranchFilterKind.X64, 183 => BranchFilterKind.Arm64, _ => BranchFilterKind.None };
        if (header.Length >= 0x40 && header[0] == (byte)'M' && header[1] == (byte)'Z')
        {
            var pe = BinaryPrimitives.ReadInt32LittleEndian(header[0x3C..]);
            if (pe > 0 && pe <= header.Length - 6 && header[pe] == (byte)'P' && header[pe + 1] == (byte)'E' && header[pe + 2] == 0 && header[pe + 3] == 0)
                return BinaryPrimitives.ReadUInt16LittleEndian(header[(pe + 4)..]) switch { 0x14C => BranchFilterKind.X86, 0x8664 => BranchFilterKind.X64, 0xAA64 => BranchFilterKind.Arm64, _ => BranchFilterKind.None };
            return BranchFilterKind.None;
        }
        if (header.Length >= 8 && BinaryPrimitives.ReadUInt32LittleEndian(header) is 0xFEEDFACF or 0xFEEDFACE)
            return BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) switch { 7 => BranchFilterKind.X86, 0x01000007 => BranchFilterKind.X64, 0x0100000C => BranchFilterKind.Arm64, _ => BranchFilterKind.None };
        return BranchFilterKind.None;
    }

    /// <summary>Transforms a whole file in place.</summary>
    public static void Transform(BranchFilterKind kind, bool encode, Span<byte> file)
    {
        if (kind == BranchFilterKind.None) return;
        var filter = new BranchFilter(kind, encode);
        filter.Process(file);
    }

    /// <summary>
    /// Transforms <paramref name="data"/> (the file's bytes from the current position on) in place. Returns how many
    /// leading bytes are final; the remaining ones (at most 5) must be passed again at the start of the next call, or
    /// are final as they are when the file ends there.
    /// </summary>
    public int Process(Span<byte> data)
    {
        var done = _kind switch
        {
            BranchFilterKind.X86 => X86(data),
            BranchFilterKind.Arm64 => Arm64(data),
            BranchFilterKind.X64 => X64(data),
            _ => data.Length,
        };
        _position += done;
        return done;
    }

    private int X86(Span<byte> data)
    {
        var i = 0;
        while (i + 5 <= data.Length)
        {
            var op = data[i];
            if (op is not (0xE8 or 0xE9)) { i++; continue; }
            var at = _position + i;
            var top = data[i + 4];
            if (at < _blockedUntil || top is not (0x00 or 0xFF))
            {
                // A rejected candidate's fifth byte must look the same to both directions, so no transform may
                // rewrite it: the next three offsets are not transformed either.
                _blockedUntil = at + 4;
                i++;
                continue;
            }
            var value = BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 1)..]);
            var next = (uint)(at + 5);
            value = (_encode ? value + next : value - next) & 0x01FFFFFF;
            if ((value & 0x01000000) != 0) value |= 0xFE000000;
            BinaryPrimitives.WriteUInt32LittleEndian(data[(i + 1)..], value);
            i += 5;
        }
        return i;
    }

    /// <summary>
    /// E8/E9 rel32 as <see cref="X86"/>, and at any other offset an opcode of <see cref="IsRipOpcode"/> followed by a
    /// RIP-relative ModRM (its <c>disp32</c> counted from the end of those 6 bytes; none of these opcodes takes an
    /// immediate after it). A decision at an offset reads bytes no accepted transform rewrites; a rejected candidate
    /// bars transforms that would rewrite the bytes it read (the next 3 offsets after an E8/E9, 4 after a RIP operand).
    /// </summary>
    private int X64(Span<byte> data)
    {
        var i = 0;
        while (i + 6 <= data.Length)
        {
            var op = data[i];
            var at = _position + i;
            int length;
            if (op is 0xE8 or 0xE9) length = 5;
            else if (IsRipOpcode(op, data[i + 1])) length = 6;
            else { i++; continue; }
            var top = data[i + length - 1];
            if (at < _blockedUntil || top is not (0x00 or 0xFF))
            {
                _blockedUntil = Math.Max(_blockedUntil, at + length - 1);
                i++;
                continue;
            }
            var disp = data.Slice(i + length - 4, 4);
            var value = BinaryPrimitives.ReadUInt32LittleEndian(disp);
            var next = (uint)(at + length);
            value = (_encode ? value + next : value - next) & 0x01FFFFFF;
            if ((value & 0x01000000) != 0) value |= 0xFE000000;
            BinaryPrimitives.WriteUInt32LittleEndian(disp, value);
            i += length;
        }
        return i;
    }

    /// <summary>mov, lea, cmp, add, sub, test, movsxd (any operand size, after any prefix), and FF /2 /4 (call/jmp [rip+disp32]).</summary>
    private static bool IsRipOpcode(byte op, byte modrm) =>
        (modrm & 0xC7) == 0x05 && op switch
        {
            0x8B or 0x8D or 0x89 or 0x3B or 0x39 or 0x63 or 0x03 or 0x2B or 0x85 => true,
            0xFF => modrm is 0x15 or 0x25,
            _ => false,
        };

    private int Arm64(Span<byte> data)
    {
        // Instructions sit at 4-aligned file offsets; a piece may start mid-word only if the caller split one, which
        // Process's contract (re-present the tail) rules out.
        var i = 0;
        while (i + 4 <= data.Length)
        {
            var word = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]);
            if (word >> 26 == 0x25)
            {
                var pc = (uint)((_position + i) >> 2);
                var imm = _encode ? word + pc : word - pc;
                BinaryPrimitives.WriteUInt32LittleEndian(data[i..], 0x94000000 | (imm & 0x03FFFFFF));
            }
            i += 4;
        }
        return i;
    }
}
