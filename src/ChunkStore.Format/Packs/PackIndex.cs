using System.Buffers.Binary;
using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>One pack object a pack index refers to: its id (SHA-256 of its bytes) and its length.</summary>
/// <param name="Id">Pack id; the pack is stored at <c>packs/&lt;ab&gt;/&lt;id&gt;</c>.</param>
/// <param name="Length">Bytes in the pack (at most <see cref="PackIndex.MaxPackBytes"/>).</param>
public readonly record struct PackInfo(ChunkId Id, long Length);

/// <summary>Where one chunk object of the release lies inside a pack.</summary>
/// <param name="Chunk">Ordinal of the chunk in the manifest's distinct chunks (<see cref="PackIndex.ChunkOrder"/>).</param>
/// <param name="Pack">Ordinal of the pack in <see cref="PackIndex.Packs"/>.</param>
/// <param name="Offset">First byte of the chunk object in the pack.</param>
/// <param name="Stored">Stored length of the chunk object (header + ciphertext + tag).</param>
public readonly record struct PackEntry(int Chunk, int Pack, long Offset, int Stored);

/// <summary>A chunk located in a pack, resolved against a manifest.</summary>
/// <param name="Chunk">Chunk object id (what the bytes at the range must hash to).</param>
/// <param name="Pack">Pack object id.</param>
/// <param name="Offset">First byte of the chunk object in the pack.</param>
/// <param name="Stored">Stored length of the chunk object.</param>
public readonly record struct PackedChunk(ChunkId Chunk, ChunkId Pack, long Offset, int Stored);

/// <summary>
/// The signed pack index of one release (docs/store-format.md, "Packs"): for chunks of the release, the pack and byte
/// range holding a byte-identical copy of the chunk object, so a device fetches runs of chunks with one HTTP Range
/// request. Bound to exactly one manifest by its SHA-256; chunks it does not list are fetched as chunk objects.
/// </summary>
/// <param name="ManifestSha256">Lower-case hex SHA-256 of the exact manifest bytes this index belongs to.</param>
/// <param name="Packs">Packs referred to, each at least once.</param>
/// <param name="Entries">Located chunks, sorted by strictly increasing <see cref="PackEntry.Chunk"/>.</param>
public sealed record PackIndex(string ManifestSha256, IReadOnlyList<PackInfo> Packs, IReadOnlyList<PackEntry> Entries)
{
    /// <summary>Format version this code writes and reads.</summary>
    public const byte FormatVersion = 1;

    /// <summary>Largest pack object: any plain mirror serves it and a device never holds more than a range of it.</summary>
    public const long MaxPackBytes = 16L * 1024 * 1024;

    private static ReadOnlySpan<byte> Magic => "OPI1"u8;
    private const int HeaderLength = 4 + 4 + 32 + 4 + 4;
    private const int PackRecordLength = 32 + 4;
    private const int EntryRecordLength = 16;

    /// <summary>
    /// The manifest's distinct chunk ids in first-appearance order (the small-file stream's chunks first, then files in
    /// manifest order, chunks in file order): what <see cref="PackEntry.Chunk"/> ordinals count.
    /// </summary>
    public static IReadOnlyList<ChunkId> ChunkOrder(Manifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var seen = new HashSet<ChunkId>();
        var order = new List<ChunkId>();
        if (manifest.Stream is { } stream)
            foreach (var c in stream.Chunks)
                if (seen.Add(c.Id)) order.Add(c.Id);
        foreach (var f in manifest.Files)
            foreach (var c in f.Chunks)
                if (seen.Add(c.Id)) order.Add(c.Id);
        return order;
    }

    /// <summary>Largest signed index a manifest with <paramref name="chunkCount"/> distinct chunks can have (each chunk in its own pack).</summary>
    public static long MaxSignedLength(int chunkCount) =>
        HeaderLength + (long)chunkCount * (PackRecordLength + EntryRecordLength) + ManifestSigner.SignatureLength;

    /// <summary>The serialized index followed by its 64-byte Ed25519 signature by <paramref name="key"/>.</summary>
    public byte[] SerializeSigned(ReleaseSigningKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var body = SerializeBody();
        var signature = ManifestSigner.Sign(body, key);
        var all = new byte[body.Length + signature.Length];
        body.CopyTo(all, 0);
        signature.CopyTo(all, body.Length);
        return all;
    }

    private byte[] SerializeBody()
    {
        Validate(Packs, Entries, int.MaxValue);
        var bytes = new byte[HeaderLength + Packs.Count * PackRecordLength + Entries.Count * EntryRecordLength];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        span[4] = FormatVersion;
        Convert.FromHexString(ManifestSha256).CopyTo(span[8..40]);
        BinaryPrimitives.WriteUInt32LittleEndian(span[40..], (uint)Packs.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(span[44..], (uint)Entries.Count);
        var at = HeaderLength;
        foreach (var p in Packs)
        {
            Convert.FromHexString(p.Id.Hex).CopyTo(span[at..]);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 32)..], (uint)p.Length);
            at += PackRecordLength;
        }
        foreach (var e in Entries)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[at..], (uint)e.Chunk);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)e.Pack);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 8)..], (uint)e.Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 12)..], (uint)e.Stored);
            at += EntryRecordLength;
        }
        return bytes;
    }

    /// <summary>
    /// Verifies the trailing signature with <paramref name="key"/> first, then parses strictly and checks the index
    /// belongs to the manifest whose exact bytes hash to <paramref name="manifestSha256"/> and has
    /// <paramref name="chunkCount"/> distinct chunks. Throws <see cref="IntegrityException"/> for a bad signature and
    /// <see cref="InvalidInputException"/> for a signed but invalid or foreign index.
    /// </summary>
    public static PackIndex VerifyAndParse(ReadOnlySpan<byte> signed, ReleasePublicKey key, string manifestSha256, int chunkCount)
    {
        var body = SignedIndexEnvelope.VerifiedBody(signed, key, HeaderLength, "Pack index");
        var index = Parse(body, chunkCount);
        if (index.ManifestSha256 != manifestSha256)
            throw new InvalidInputException($"Pack index belongs to the manifest with SHA-256 {index.ManifestSha256}, not {manifestSha256}: it is another release's index.");
        return index;
    }

    /// <summary>Parses an unsigned index body strictly: exact length, known version, zero reserved bytes, every rule of <see cref="Validate"/>.</summary>
    internal static PackIndex Parse(ReadOnlySpan<byte> body, int chunkCount)
    {
        SignedIndexEnvelope.CheckHeader(body, HeaderLength, "OPI1", FormatVersion, "Pack index", "the store's chunk objects are used instead");
        var packCount = BinaryPrimitives.ReadUInt32LittleEndian(body[40..]);
        var entryCount = BinaryPrimitives.ReadUInt32LittleEndian(body[44..]);
        var expected = HeaderLength + (long)packCount * PackRecordLength + (long)entryCount * EntryRecordLength;
        if (expected != body.Length)
            throw new InvalidInputException($"Pack index declares {packCount} packs and {entryCount} entries ({expected} bytes) but holds {body.Length} bytes.");
        var sha = Convert.ToHexStringLower(body[8..40]);
        var packs = new PackInfo[packCount];
        var at = HeaderLength;
        for (var i = 0; i < packs.Length; i++, at += PackRecordLength)
            packs[i] = new PackInfo(ChunkId.Parse(Convert.ToHexStringLower(body.Slice(at, 32))), BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 32)..]));
        var entries = new PackEntry[entryCount];
        for (var i = 0; i < entries.Length; i++, at += EntryRecordLength)
        {
            var chunk = BinaryPrimitives.ReadUInt32LittleEndian(body[at..]);
            var pack = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 4)..]);
            var stored = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 12)..]);
            if (chunk > int.MaxValue || pack > int.MaxValue || stored > int.MaxValue)
                throw new InvalidInputException($"Pack index entry {i} has a field above 2^31.");
            entries[i] = new PackEntry((int)chunk, (int)pack, BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 8)..]), (int)stored);
        }
        Validate(packs, entries, chunkCount);
        return new PackIndex(sha, packs, entries);
    }

    /// <summary>
    /// Rules of a valid index: packs distinct, 1 .. <see cref="MaxPackBytes"/> long and each used; entries sorted by
    /// strictly increasing chunk ordinal below <paramref name="chunkCount"/>, each inside its pack and at least a
    /// chunk object's header and tag long.
    /// </summary>
    private static void Validate(IReadOnlyList<PackInfo> packs, IReadOnlyList<PackEntry> entries, int chunkCount)
    {
        var used = new bool[packs.Count];
        var ids = new HashSet<ChunkId>();
        foreach (var p in packs)
        {
            if (p.Length is < 1 or > MaxPackBytes)
                throw new InvalidInputException($"Pack {p.Id} is {p.Length} bytes long; a pack holds 1 .. {MaxPackBytes} bytes.");
            if (!ids.Add(p.Id)) throw new InvalidInputException($"Pack {p.Id} is listed twice in the pack index.");
        }
        var previous = -1;
        foreach (var e in entries)
        {
            if (e.Chunk <= previous) throw new InvalidInputException($"Pack index entries are not sorted by strictly increasing chunk ordinal at ordinal {e.Chunk}.");
            if (e.Chunk >= chunkCount) throw new InvalidInputException($"Pack index entry names chunk ordinal {e.Chunk}, but the manifest has {chunkCount} distinct chunks.");
            if (e.Pack < 0 || e.Pack >= packs.Count) throw new InvalidInputException($"Pack index entry for chunk ordinal {e.Chunk} names pack {e.Pack} of {packs.Count}.");
            if (e.Stored < ChunkCodec.HeaderLength + ChunkCodec.TagLength || e.Offset < 0 || e.Offset + e.Stored > packs[e.Pack].Length)
                throw new InvalidInputException($"Pack index entry for chunk ordinal {e.Chunk} ({e.Stored} bytes at {e.Offset}) does not fit a chunk object inside pack {packs[e.Pack].Id}.");
            used[e.Pack] = true;
            previous = e.Chunk;
        }
        for (var i = 0; i < used.Length; i++)
            if (!used[i]) throw new InvalidInputException($"Pack {packs[i].Id} is listed in the pack index but holds none of its chunks.");
    }

    /// <summary>The located chunks by id, resolved against the manifest's <see cref="ChunkOrder"/>.</summary>
    public Dictionary<ChunkId, PackedChunk> Locate(IReadOnlyList<ChunkId> chunkOrder)
    {
        ArgumentNullException.ThrowIfNull(chunkOrder);
        var located = new Dictionary<ChunkId, PackedChunk>(Entries.Count);
        foreach (var e in Entries)
            located[chunkOrder[e.Chunk]] = new PackedChunk(chunkOrder[e.Chunk], Packs[e.Pack].Id, e.Offset, e.Stored);
        return located;
    }

    /// <summary>
    /// The pack index the store holds next to a manifest, read by the store's own tools (publisher, gc), which need no
    /// signature check: null when there is none, it does not parse, or it belongs to other manifest bytes (a leftover
    /// of an interrupted publish, which agents refuse too).
    /// </summary>
    public static PackIndex? ReadStored(Storage.IContentStore store, string manifestPath, ReadOnlySpan<byte> manifestBytes, Manifest manifest)
    {
        ArgumentNullException.ThrowIfNull(store);
        var signed = store.ReadFile(Storage.StoreLayout.PackIndexPathFor(manifestPath));
        if (signed is null || signed.Length < ManifestSigner.SignatureLength) return null;
        try
        {
            var index = Parse(signed.AsSpan(0, signed.Length - ManifestSigner.SignatureLength), ChunkOrder(manifest).Count);
            return index.ManifestSha256 == ManifestHashOf(manifestBytes) ? index : null;
        }
        catch (InvalidInputException)
        {
            return null;
        }
    }

    /// <summary>SHA-256 of manifest bytes as the index records it.</summary>
    public static string ManifestHashOf(ReadOnlySpan<byte> manifestBytes) => Convert.ToHexStringLower(SHA256.HashData(manifestBytes));
}
