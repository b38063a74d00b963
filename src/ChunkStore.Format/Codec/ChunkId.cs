using System.Security.Cryptography;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Codec;

/// <summary>
/// Identity of a stored chunk object: SHA-256 of its stored (compressed, encrypted) bytes as 64 lower-case hex
/// characters. Anyone can check an object against its id without keys.
/// </summary>
public readonly record struct ChunkId
{
    private ChunkId(string hex) => Hex = hex;

    /// <summary>64 lower-case hex characters.</summary>
    public string Hex { get; }

    /// <summary>The id of <paramref name="storedBytes"/>.</summary>
    public static ChunkId Of(ReadOnlySpan<byte> storedBytes)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(storedBytes, hash);
        return new ChunkId(Convert.ToHexStringLower(hash));
    }

    /// <summary>True when <paramref name="text"/> is exactly 64 lower-case hex characters.</summary>
    public static bool IsValid(string? text)
    {
        if (text is null || text.Length != 64) return false;
        foreach (var c in text)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        return true;
    }

    /// <summary>Parses a chunk id; throws <see cref="InvalidInputException"/> unless it is 64 lower-case hex characters.</summary>
    public static ChunkId Parse(string? text)
    {
        if (!IsValid(text))
            throw new InvalidInputException($"Chunk id '{text}' is invalid: expected 64 lower-case hex characters (a SHA-256).");
        return new ChunkId(text!);
    }

    /// <summary>Parses without throwing.</summary>
    public static bool TryParse(string? text, out ChunkId id)
    {
        id = IsValid(text) ? new ChunkId(text!) : default;
        return id.Hex is not null;
    }

    /// <summary>True when <paramref name="storedBytes"/> hash to this id.</summary>
    public bool Matches(ReadOnlySpan<byte> storedBytes) => Of(storedBytes).Hex == Hex;

    /// <inheritdoc />
    public override string ToString() => Hex ?? "";
}
