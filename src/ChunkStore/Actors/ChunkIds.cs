using System.Security.Cryptography;

namespace Orchestrator.ChunkStore.Actors;

/// <summary>Chunk id rules: SHA-256 of the stored bytes, written as 64 lower-case hex characters.</summary>
public static class ChunkIds
{
    /// <summary>Length of a chunk id in characters.</summary>
    public const int Length = 64;

    /// <summary>True when <paramref name="id"/> is exactly 64 lower-case hex characters (no path tricks possible).</summary>
    public static bool IsValid(string? id)
    {
        if (id is null || id.Length != Length) return false;
        foreach (var c in id)
        {
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        }
        return true;
    }

    /// <summary>The id the given stored bytes must carry.</summary>
    public static string Compute(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>True when the bytes hash to the id.</summary>
    public static bool Matches(string id, ReadOnlySpan<byte> data)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(data, hash);
        return string.Equals(Convert.ToHexStringLower(hash), id, StringComparison.Ordinal);
    }
}
