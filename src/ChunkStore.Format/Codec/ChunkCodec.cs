using System.Buffers.Binary;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Chunking;
using Orchestrator.ChunkStore.Validation;
using ZstdSharp;

namespace Orchestrator.ChunkStore.Codec;

/// <summary>A chunk ready to store: its id and its stored bytes.</summary>
/// <param name="Id">SHA-256 of <paramref name="Stored"/>.</param>
/// <param name="Stored">Header, ciphertext and tag (docs/store-format.md, "Chunk object").</param>
/// <param name="PlainLength">Length of the plaintext it decodes to.</param>
public sealed record EncodedChunk(ChunkId Id, byte[] Stored, int PlainLength);

/// <summary>
/// Encodes plaintext chunks into stored objects and back: zstd, then AES-256-GCM with a nonce derived from the
/// plaintext hash, so equal plaintext under one key gives byte-equal objects (dedup across versions), and the
/// header is authenticated as associated data. Thread-safe (per-thread compression contexts).
/// </summary>
public static class ChunkCodec
{
    /// <summary>Header length in bytes.</summary>
    public const int HeaderLength = 24;

    /// <summary>AES-GCM tag length in bytes.</summary>
    public const int TagLength = 16;

    /// <summary>Format version written into byte 4 of the header.</summary>
    public const byte FormatVersion = 1;

    /// <summary>zstd level used for every chunk (the encoder build may vary; see <see cref="ZstdEncoder"/>).</summary>
    public const int CompressionLevel = 3;

    private const byte CompressionNone = 0;
    private const byte CompressionZstd = 1;
    private static ReadOnlySpan<byte> Magic => "OCK1"u8;

    [ThreadStatic] private static Decompressor? t_decompressor;

    /// <summary>
    /// The keyed plaintext tag: HMAC-SHA256(nonceKey, SHA-256(plaintext)). Its first 12 bytes are the chunk's
    /// nonce; the publisher also uses the whole tag to recognise plaintext it already stored without compressing
    /// it again. Without the content key it reveals nothing but equality, which chunk ids reveal anyway.
    /// </summary>
    public static byte[] PlaintextTag(ReadOnlySpan<byte> plaintext, ContentKey key)
    {
        var tag = new byte[PlaintextTagLength];
        WritePlaintextTag(plaintext, key, tag);
        return tag;
    }

    /// <summary>Length of <see cref="PlaintextTag"/> in bytes.</summary>
    public const int PlaintextTagLength = 32;

    /// <summary>Allocation-free form of <see cref="PlaintextTag"/> (the publisher's hot path).</summary>
    internal static void WritePlaintextTag(ReadOnlySpan<byte> plaintext, ContentKey key, Span<byte> tag)
    {
        ArgumentNullException.ThrowIfNull(key);
        Span<byte> plainHash = stackalloc byte[32];
        SHA256.HashData(plaintext, plainHash);
        HMACSHA256.HashData(key.NonceKey, plainHash, tag);
    }

    /// <summary>Bytes of <see cref="PlaintextTag"/> recorded in manifests as a chunk's <c>tag</c>.</summary>
    public const int ManifestTagLength = 16;

    /// <summary>
    /// The chunk's identity in a manifest: the first <see cref="ManifestTagLength"/> bytes of
    /// <see cref="PlaintextTag"/>, lower-case hex. It depends only on plaintext and key, never on the compressor.
    /// </summary>
    public static string ManifestTag(ReadOnlySpan<byte> plaintext, ContentKey key) =>
        ManifestTagOf(PlaintextTag(plaintext, key));

    /// <summary>The manifest form of an already computed <see cref="PlaintextTag"/>.</summary>
    public static string ManifestTagOf(ReadOnlySpan<byte> plaintextTag)
    {
        if (plaintextTag.Length != 32)
            throw new ArgumentException("A plaintext tag is 32 bytes (from PlaintextTag).", nameof(plaintextTag));
        return Convert.ToHexStringLower(plaintextTag[..ManifestTagLength]);
    }

    /// <summary>True when <paramref name="text"/> has the form of a manifest tag (32 lower-case hex characters).</summary>
    public static bool IsManifestTag(string? text)
    {
        if (text is null || text.Length != ManifestTagLength * 2) return false;
        foreach (var ch in text)
            if (ch is not ((>= '0' and <= '9') or (>= 'a' and <= 'f'))) return false;
        return true;
    }

    /// <summary>Encodes one plaintext chunk (1 byte .. 16 MiB).</summary>
    public static EncodedChunk Encode(ReadOnlySpan<byte> plaintext, ContentKey key) =>
        Encode(plaintext, key, PlaintextTag(plaintext, key));

    /// <summary>Encodes one plaintext chunk whose <see cref="PlaintextTag"/> the caller already computed.</summary>
    public static EncodedChunk Encode(ReadOnlySpan<byte> plaintext, ContentKey key, ReadOnlySpan<byte> plaintextTag) =>
        Encode(plaintext, key, plaintextTag, forceManaged: false);

    /// <summary>
    /// Encodes a payload that is already compressed (a zstd patch) with compression = none: the same object format,
    /// key derivation, nonce and id rule as any chunk, without spending CPU on a second zstd pass that cannot win.
    /// </summary>
    public static EncodedChunk EncodeUncompressed(ReadOnlySpan<byte> payload, ContentKey key) =>
        Encode(payload, key, PlaintextTag(payload, key), forceManaged: false, tryCompress: false);

    /// <summary>As <see cref="Encode(ReadOnlySpan{byte}, ContentKey, ReadOnlySpan{byte})"/>; tests pin the managed encoder's bytes.</summary>
    internal static EncodedChunk Encode(ReadOnlySpan<byte> plaintext, ContentKey key, ReadOnlySpan<byte> plaintextTag, bool forceManaged) =>
        Encode(plaintext, key, plaintextTag, forceManaged, tryCompress: true);

    private static EncodedChunk Encode(ReadOnlySpan<byte> plaintext, ContentKey key, ReadOnlySpan<byte> plaintextTag, bool forceManaged, bool tryCompress)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(MaxStoredLength(plaintext.Length));
        try
        {
            var length = EncodeInto(plaintext, key, plaintextTag, buffer, out var id, forceManaged, tryCompress);
            return new EncodedChunk(id, buffer.AsSpan(0, length).ToArray(), plaintext.Length);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Largest stored object <see cref="EncodeInto"/> can write for <paramref name="plainLength"/> bytes of plaintext.</summary>
    internal static int MaxStoredLength(int plainLength) =>
        HeaderLength + Math.Max(ZstdEncoder.Bound(plainLength), plainLength) + TagLength;

    /// <summary>
    /// Encodes one chunk into <paramref name="destination"/> (at least <see cref="MaxStoredLength"/> bytes) and
    /// returns the stored length; <paramref name="id"/> is its chunk id. The publisher's path: no per-chunk
    /// allocation besides the id string.
    /// </summary>
    internal static int EncodeInto(ReadOnlySpan<byte> plaintext, ContentKey key, ReadOnlySpan<byte> plaintextTag, Span<byte> destination,
        out ChunkId id, bool forceManaged = false, bool tryCompress = true)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (plaintextTag.Length != PlaintextTagLength)
            throw new ArgumentException("A plaintext tag is 32 bytes (from PlaintextTag).", nameof(plaintextTag));
        if (plaintext.Length == 0 || plaintext.Length > ChunkingOptions.MaxChunkLimit)
            throw new ArgumentOutOfRangeException(nameof(plaintext), $"A chunk holds 1 .. {ChunkingOptions.MaxChunkLimit} bytes, got {plaintext.Length}.");
        if (destination.Length < MaxStoredLength(plaintext.Length))
            throw new ArgumentException($"The destination needs {MaxStoredLength(plaintext.Length)} bytes.", nameof(destination));

        // An already-compressed payload (a delta patch) skips zstd and the scratch buffer altogether.
        var scratch = !tryCompress ? [] : t_scratch is { } s && s.Length >= ZstdEncoder.Bound(plaintext.Length)
            ? s
            : t_scratch = new byte[Math.Max(ZstdEncoder.Bound(plaintext.Length), ZstdEncoder.Bound(ChunkingOptions.Default.Max))];
        var compressedLength = tryCompress ? ZstdEncoder.Compress(plaintext, scratch, CompressionLevel, forceManaged) : int.MaxValue;
        var useZstd = compressedLength < plaintext.Length;
        var payload = useZstd ? scratch.AsSpan(0, compressedLength) : plaintext;

        var storedLength = HeaderLength + payload.Length + TagLength;
        var stored = destination[..storedLength];
        var header = stored[..HeaderLength];
        Magic.CopyTo(header);
        header[4] = FormatVersion;
        header[5] = useZstd ? CompressionZstd : CompressionNone;
        header[6] = 0;
        header[7] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)plaintext.Length);
        plaintextTag[..12].CopyTo(header[12..24]);

        Cipher(key).Encrypt(header[12..24], payload, stored.Slice(HeaderLength, payload.Length),
            stored.Slice(HeaderLength + payload.Length, TagLength), header);
        id = ChunkId.Of(stored);
        return storedLength;
    }

    // Per-thread state of the encode path: the compression scratch buffer and one AES-GCM instance per content key
    // (creating an AesGcm sets up a cipher context and key schedule; publishing encodes thousands of chunks per key).
    [ThreadStatic] private static byte[]? t_scratch;
    [ThreadStatic] private static AesGcm? t_aes;
    [ThreadStatic] private static byte[]? t_aesKey;

    private static AesGcm Cipher(ContentKey key)
    {
        if (t_aes is { } aes && ReferenceEquals(t_aesKey, key.EncryptionKey)) return aes;
        t_aes?.Dispose();
        t_aes = new AesGcm(key.EncryptionKey, TagLength);
        t_aesKey = key.EncryptionKey;
        return t_aes;
    }

    /// <summary>
    /// Reads the plaintext length from a stored object's header without keys (it is authenticated by the tag,
    /// so trust it only after <see cref="Decode"/>, or for consistency checks). Throws <see cref="IntegrityException"/>
    /// for a malformed header.
    /// </summary>
    public static int ReadPlainLength(ReadOnlySpan<byte> stored)
    {
        CheckHeader(stored, out var plainLength, out _);
        return plainLength;
    }

    /// <summary>True when <paramref name="stored"/> hashes to <paramref name="id"/> (no keys needed).</summary>
    public static bool Verify(ChunkId id, ReadOnlySpan<byte> stored) => id.Matches(stored);

    /// <summary>
    /// Decodes a stored object to its plaintext. Checks the id (when given), the header, the length the
    /// manifest expects (at most 16 MiB: the hard cap against decompression bombs), the tag, and the
    /// decompressed size. Throws <see cref="IntegrityException"/> naming the failed check.
    /// </summary>
    public static byte[] Decode(ReadOnlySpan<byte> stored, ContentKey key, int expectedPlainLength, ChunkId? expectedId = null)
    {
        var plaintext = new byte[Math.Clamp(expectedPlainLength, 0, ChunkingOptions.MaxChunkLimit)];
        DecodeInto(stored, key, expectedPlainLength, plaintext, expectedId);
        return plaintext;
    }

    /// <summary>
    /// <see cref="Decode"/> into <paramref name="destination"/> (at least <paramref name="expectedPlainLength"/> bytes;
    /// its first <paramref name="expectedPlainLength"/> bytes are the plaintext when this returns), so a caller decoding
    /// many chunks can reuse one buffer instead of allocating one of each chunk's size.
    /// </summary>
    public static void DecodeInto(ReadOnlySpan<byte> stored, ContentKey key, int expectedPlainLength, Span<byte> destination, ChunkId? expectedId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var label = expectedId?.Hex ?? "(unnamed)";
        if (expectedId is { } id && !id.Matches(stored))
            throw new IntegrityException($"Chunk {label}: stored bytes do not hash to the chunk id (corrupted or substituted object).");
        if (expectedPlainLength < 1 || expectedPlainLength > ChunkingOptions.MaxChunkLimit)
            throw new IntegrityException($"Chunk {label}: expected length {expectedPlainLength} is outside 1 .. {ChunkingOptions.MaxChunkLimit}.");
        if (destination.Length < expectedPlainLength)
            throw new ArgumentException($"the destination holds {destination.Length} bytes, the chunk decodes to {expectedPlainLength}", nameof(destination));
        CheckHeader(stored, out var plainLength, out var compression, label);
        if (plainLength != expectedPlainLength)
            throw new IntegrityException($"Chunk {label}: header says {plainLength} plaintext bytes, the manifest expects {expectedPlainLength}.");

        var header = stored[..HeaderLength];
        var payloadLength = stored.Length - HeaderLength - TagLength;
        if (compression == CompressionNone && payloadLength != plainLength)
            throw new IntegrityException($"Chunk {label}: uncompressed payload has {payloadLength} bytes, header says {plainLength}.");
        if (compression == CompressionZstd && payloadLength >= plainLength)
            throw new IntegrityException($"Chunk {label}: compressed payload is not smaller than the plaintext (non-canonical object).");

        // An uncompressed payload decrypts straight into the destination; a compressed one through a pooled buffer.
        var rented = compression == CompressionNone ? null : System.Buffers.ArrayPool<byte>.Shared.Rent(payloadLength);
        try
        {
            var payload = rented is null ? destination[..payloadLength] : rented.AsSpan(0, payloadLength);
            try
            {
                using var aes = new AesGcm(key.EncryptionKey, TagLength);
                aes.Decrypt(header[12..24], stored.Slice(HeaderLength, payloadLength), stored[^TagLength..], payload, header);
            }
            catch (AuthenticationTagMismatchException ex)
            {
                throw new IntegrityException($"Chunk {label}: authentication failed (wrong content key or modified bytes).", ex);
            }
            if (rented is null) return;

            var decompressor = t_decompressor ??= new Decompressor();
            int written;
            try
            {
                // The destination is exactly the expected size: a frame that would inflate further fails here
                // instead of allocating whatever the frame claims.
                if (!decompressor.TryUnwrap(payload, destination[..plainLength], out written))
                    throw new IntegrityException($"Chunk {label}: decompressed data exceeds the expected {plainLength} bytes.");
            }
            catch (ZstdException ex)
            {
                throw new IntegrityException($"Chunk {label}: zstd payload is malformed: {ex.Message}", ex);
            }
            if (written != plainLength)
                throw new IntegrityException($"Chunk {label}: decompressed to {written} bytes, header says {plainLength}.");
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void CheckHeader(ReadOnlySpan<byte> stored, out int plainLength, out byte compression, string label = "(unnamed)")
    {
        if (stored.Length < HeaderLength + TagLength)
            throw new IntegrityException($"Chunk {label}: {stored.Length} bytes is too short for a chunk object.");
        if (!stored[..4].SequenceEqual(Magic))
            throw new IntegrityException($"Chunk {label}: not a chunk object (bad magic).");
        if (stored[4] != FormatVersion)
            throw new IntegrityException($"Chunk {label}: unsupported chunk format version {stored[4]} (this build reads {FormatVersion}).");
        compression = stored[5];
        if (compression is not (CompressionNone or CompressionZstd))
            throw new IntegrityException($"Chunk {label}: unknown compression {compression}.");
        if (stored[6] != 0 || stored[7] != 0)
            throw new IntegrityException($"Chunk {label}: reserved header bytes are not zero.");
        var length = BinaryPrimitives.ReadUInt32LittleEndian(stored[8..]);
        if (length < 1 || length > ChunkingOptions.MaxChunkLimit)
            throw new IntegrityException($"Chunk {label}: header length {length} is outside 1 .. {ChunkingOptions.MaxChunkLimit}.");
        plainLength = (int)length;
    }
}
