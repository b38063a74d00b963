using System.Buffers.Binary;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Tests.Support;
using Orchestrator.ChunkStore.Validation;
using ZstdSharp;

namespace Orchestrator.ChunkStore.Tests.Codec;

public class ChunkCodecTests
{
    private static readonly ContentKey Key = ContentKey.FromBytes(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    [Theory]
    [InlineData(1, false)]
    [InlineData(65536, false)]
    [InlineData(65536, true)]
    [InlineData(300_000, true)]
    public void Round_trip(int length, bool compressible)
    {
        var plain = compressible ? new byte[length] : TestData.Random(length, length);
        if (compressible) for (var i = 0; i < length; i++) plain[i] = (byte)(i % 7);
        var encoded = ChunkCodec.Encode(plain, Key);
        Assert.Equal(plain, ChunkCodec.Decode(encoded.Stored, Key, length, encoded.Id));
        Assert.True(ChunkCodec.Verify(encoded.Id, encoded.Stored));
        Assert.Equal(length, ChunkCodec.ReadPlainLength(encoded.Stored));
        if (compressible) Assert.True(encoded.Stored.Length < length / 4);
    }

    [Fact]
    public void Equal_plaintext_gives_equal_objects_and_different_plaintext_different_ids()
    {
        var plain = TestData.Random(10_000, 1);
        var a = ChunkCodec.Encode(plain, Key);
        var b = ChunkCodec.Encode(plain.ToArray(), Key);
        Assert.Equal(a.Stored, b.Stored);
        Assert.Equal(a.Id, b.Id);
        plain[5] ^= 1;
        var c = ChunkCodec.Encode(plain, Key);
        Assert.NotEqual(a.Id, c.Id);
        Assert.NotEqual(a.Stored.AsSpan(12, 12).ToArray(), c.Stored.AsSpan(12, 12).ToArray()); // distinct nonces
    }

    /// <summary>
    /// Each encoding thread caches its AES-GCM instance per content key: alternating keys on one thread must still
    /// encrypt under the right key every time, and the allocation-free path must write exactly the bytes of Encode.
    /// </summary>
    [Fact]
    public void Alternating_keys_on_one_thread_encrypt_under_each_key_and_EncodeInto_matches_Encode()
    {
        var other = ContentKey.FromBytes(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray());
        var plain = TestData.Random(50_000, 9);
        for (var round = 0; round < 2; round++)
            foreach (var (key, wrong) in new[] { (Key, other), (other, Key) })
            {
                var encoded = ChunkCodec.Encode(plain, key);
                Assert.Equal(plain, ChunkCodec.Decode(encoded.Stored, key, plain.Length, encoded.Id));
                Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(encoded.Stored, wrong, plain.Length, encoded.Id));

                var tag = new byte[ChunkCodec.PlaintextTagLength];
                ChunkCodec.WritePlaintextTag(plain, key, tag);
                Assert.Equal(ChunkCodec.PlaintextTag(plain, key), tag);
                var buffer = new byte[ChunkCodec.MaxStoredLength(plain.Length) + 7];
                buffer.AsSpan().Fill(0xEE); // stale bytes in a pooled buffer must not leak into the object
                var length = ChunkCodec.EncodeInto(plain, key, tag, buffer, out var id);
                Assert.Equal(encoded.Stored, buffer.AsSpan(0, length).ToArray());
                Assert.Equal(encoded.Id, id);
            }
    }

    /// <summary>
    /// The publisher may compress with the system libzstd or the managed port; either object must decode with
    /// the managed decoder and carry the same nonce (the tag), whatever the payload bytes are.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(70_000)]
    [InlineData(1_000_000)]
    public void Native_and_managed_encodings_both_decode(int length)
    {
        var plain = new byte[length];
        var noise = TestData.Random(length, 3);
        for (var i = 0; i < length; i++) plain[i] = (byte)(i % 13 == 0 ? noise[i] : i % 5);
        var tag = ChunkCodec.PlaintextTag(plain, Key);
        var native = ChunkCodec.Encode(plain, Key, tag, forceManaged: false);
        var managed = ChunkCodec.Encode(plain, Key, tag, forceManaged: true);
        Assert.Equal(plain, ChunkCodec.Decode(native.Stored, Key, length, native.Id));
        Assert.Equal(plain, ChunkCodec.Decode(managed.Stored, Key, length, managed.Id));
        Assert.Equal(managed.Stored.AsSpan(0, ChunkCodec.HeaderLength).ToArray(), native.Stored.AsSpan(0, ChunkCodec.HeaderLength).ToArray());
        if (length > 1000) Assert.True(native.Stored.Length < length / 2, $"libzstd={ZstdEncoder.LibraryName ?? "absent"}: {native.Stored.Length} bytes");
    }

    [Fact]
    public void Ciphertext_does_not_contain_the_plaintext()
    {
        var plain = "secret secret secret secret secret secret secret"u8.ToArray();
        var encoded = ChunkCodec.Encode(plain, Key);
        Assert.Equal(-1, encoded.Stored.AsSpan().IndexOf("secret"u8));
    }

    [Fact]
    public void Every_tampered_byte_is_rejected()
    {
        var plain = TestData.Random(2000, 2);
        var encoded = ChunkCodec.Encode(plain, Key);
        for (var i = 0; i < encoded.Stored.Length; i += 7)
        {
            var tampered = encoded.Stored.ToArray();
            tampered[i] ^= 0x40;
            Assert.False(ChunkCodec.Verify(encoded.Id, tampered));
            Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(tampered, Key, plain.Length, encoded.Id));
            // Without the id check, the header checks or the GCM tag still catch it.
            Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(tampered, Key, plain.Length));
        }
    }

    [Fact]
    public void Wrong_key_is_rejected()
    {
        var encoded = ChunkCodec.Encode(TestData.Random(1000, 3), Key);
        var ex = Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(encoded.Stored, ContentKey.Generate(), 1000, encoded.Id));
        Assert.Contains("authentication failed", ex.Message);
    }

    [Fact]
    public void Wrong_expected_length_is_rejected()
    {
        var encoded = ChunkCodec.Encode(TestData.Random(1000, 4), Key);
        Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(encoded.Stored, Key, 999, encoded.Id));
        Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(encoded.Stored, Key, 64 * 1024 * 1024));
    }

    [Fact]
    public void Decompression_bomb_is_rejected()
    {
        // A validly encrypted object whose zstd frame inflates to 64 MiB while the header claims 1 MB:
        // built by hand with the key, as an attacker holding the key (or a buggy publisher) could.
        var bomb = new Compressor(1).Wrap(new byte[64 * 1024 * 1024]).ToArray();
        var stored = new byte[ChunkCodec.HeaderLength + bomb.Length + ChunkCodec.TagLength];
        "OCK1"u8.CopyTo(stored);
        stored[4] = 1;
        stored[5] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(stored.AsSpan(8), 1_000_000);
        stored[12] = 42;
        var encKey = (byte[])typeof(ContentKey).GetProperty("EncryptionKey", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(Key)!;
        using (var aes = new System.Security.Cryptography.AesGcm(encKey, 16))
            aes.Encrypt(stored.AsSpan(12, 12), bomb, stored.AsSpan(24, bomb.Length), stored.AsSpan(24 + bomb.Length, 16), stored.AsSpan(0, 24));
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var ex = Assert.Throws<IntegrityException>(() => ChunkCodec.Decode(stored, Key, 1_000_000, ChunkId.Of(stored)));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Contains("exceeds", ex.Message + ex.InnerException?.Message);
        Assert.True(allocated < 8 * 1024 * 1024, $"decoding the bomb allocated {allocated} bytes");
    }

    [Fact]
    public void Malformed_headers_are_rejected()
    {
        Assert.Throws<IntegrityException>(() => ChunkCodec.ReadPlainLength(new byte[10]));
        var encoded = ChunkCodec.Encode(TestData.Random(100, 5), Key);
        var wrongVersion = encoded.Stored.ToArray();
        wrongVersion[4] = 9;
        Assert.Contains("version", Assert.Throws<IntegrityException>(() => ChunkCodec.ReadPlainLength(wrongVersion)).Message);
    }

    [Fact]
    public void Chunk_ids_parse_strictly()
    {
        var id = ChunkId.Of([1, 2, 3]);
        Assert.Equal(id, ChunkId.Parse(id.Hex));
        Assert.Throws<InvalidInputException>(() => ChunkId.Parse(id.Hex.ToUpperInvariant()));
        Assert.Throws<InvalidInputException>(() => ChunkId.Parse(id.Hex[..63]));
        Assert.Throws<InvalidInputException>(() => ChunkId.Parse("../" + id.Hex[3..]));
    }

    [Fact]
    public void Content_key_must_be_32_bytes()
    {
        Assert.Throws<InvalidInputException>(() => ContentKey.FromBytes(new byte[31]));
        var key = ContentKey.Generate();
        Assert.Equal(key.ToBytes(), ContentKey.FromBytes(key.ToBytes()).ToBytes());
    }
}

public class ChunkCodecKnownAnswerTests
{
    /// <summary>
    /// Pins the manifest tag for a fixed key and plaintext: agents recognise chunks they already hold by this
    /// tag, so a change to the tag or key derivation breaks local reuse between differently built publishers
    /// and agents; this test makes such a change deliberate. (Stored bytes may differ between zstd builds.)
    /// </summary>
    [Fact]
    public void Manifest_tag_is_pinned()
    {
        var key = ContentKey.FromBytes(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var plain = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("orch golden chunk ", 60)));
        var tag = ChunkCodec.ManifestTag(plain, key);
        Assert.Equal("8504d4bee618968401c78c76551f94fb", tag); // also computed with Python hmac/hashlib from docs/store-format.md
        Assert.True(ChunkCodec.IsManifestTag(tag));
        Assert.Equal(tag, ChunkCodec.ManifestTagOf(ChunkCodec.PlaintextTag(plain, key)));
        // The nonce in the stored header is the tag's first 12 bytes (docs/store-format.md).
        Assert.Equal(tag[..24], Convert.ToHexStringLower(ChunkCodec.Encode(plain, key).Stored.AsSpan(12, 12)));
    }

    /// <summary>
    /// Pins the exact stored bytes of the managed ZstdSharp encoder for a fixed key and plaintext, so an
    /// accidental change to the codec or key derivation is noticed (it would re-store every chunk).
    /// </summary>
    [Fact]
    public void Encoding_is_pinned()
    {
        var key = ContentKey.FromBytes(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var plain = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("orch golden chunk ", 60)));
        var encoded = ChunkCodec.Encode(plain, key, ChunkCodec.PlaintextTag(plain, key), forceManaged: true);
        Assert.Equal("de5168dc4fbc9a405767b302bb203e2ad8deca4e4eb4b717d82ace1aface2cb4", encoded.Id.Hex);
        Assert.Equal(76, encoded.Stored.Length);
        Assert.Equal(plain, ChunkCodec.Decode(encoded.Stored, key, plain.Length, encoded.Id));
    }
}
