using System.Numerics;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Chunking;

/// <summary>
/// FastCDC chunk size bounds in bytes. Recorded in every manifest, because an agent must chunk its local files
/// with the same parameters to recognise chunks it already holds.
/// </summary>
/// <param name="Min">No chunk is shorter (except the last one of a file).</param>
/// <param name="Avg">Normal (target) size; a power of two.</param>
/// <param name="Max">No chunk is longer.</param>
public sealed record ChunkingOptions(int Min, int Avg, int Max)
{
    /// <summary>Largest allowed <see cref="Max"/>: 16 MiB. Also the codec's hard cap on a chunk's plaintext.</summary>
    public const int MaxChunkLimit = 16 * 1024 * 1024;

    /// <summary>The defaults: 16 / 64 / 256 KiB.</summary>
    public static ChunkingOptions Default { get; } = new(16 * 1024, 64 * 1024, 256 * 1024);

    /// <summary>Returns null when the bounds are usable, else the reason.</summary>
    public string? Problem()
    {
        if (Min < 64) return $"min ({Min}) must be at least 64 bytes";
        if (!(Min < Avg && Avg < Max)) return $"sizes must satisfy min < avg < max (got {Min}/{Avg}/{Max})";
        if (Max > MaxChunkLimit) return $"max ({Max}) must be at most {MaxChunkLimit} bytes (16 MiB)";
        if (!BitOperations.IsPow2(Avg)) return $"avg ({Avg}) must be a power of two (e.g. 65536)";
        if (BitOperations.Log2((uint)Avg) < 8) return $"avg ({Avg}) must be at least 256";
        return null;
    }

    /// <summary>Throws <see cref="InvalidInputException"/> unless the bounds are usable.</summary>
    public ChunkingOptions Validated()
    {
        var problem = Problem();
        if (problem is not null)
            throw new InvalidInputException($"Chunking options are invalid: {problem}.");
        return this;
    }
}
