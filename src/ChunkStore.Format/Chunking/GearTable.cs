using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.ChunkStore.Chunking;

/// <summary>
/// The 256 random 64-bit values of the gear hash. Derived from SHA-256 of a fixed label and the byte value
/// instead of a pasted table, so anyone can regenerate it, and chunk boundaries are identical everywhere.
/// Changing it changes every boundary, i.e. it is part of the store format.
/// </summary>
public static class GearTable
{
    /// <summary>The table: entry i = first 8 bytes (little-endian) of SHA-256("orch/fastcdc/gear/v1" || i).</summary>
    public static readonly ulong[] Values = Build();

    private static ulong[] Build()
    {
        var label = Encoding.ASCII.GetBytes("orch/fastcdc/gear/v1");
        var input = new byte[label.Length + 1];
        label.CopyTo(input, 0);
        var table = new ulong[256];
        Span<byte> hash = stackalloc byte[32];
        for (var i = 0; i < 256; i++)
        {
            input[^1] = (byte)i;
            SHA256.HashData(input, hash);
            table[i] = BinaryPrimitives.ReadUInt64LittleEndian(hash);
        }
        return table;
    }
}
