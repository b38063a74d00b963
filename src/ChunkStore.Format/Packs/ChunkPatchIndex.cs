using System.Buffers.Binary;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Packs;

/// <summary>A file of the base release a chunk patch is coded against: its SHA-256 and length.</summary>
/// <param name="Sha256">Lower-case hex SHA-256 of the whole file (what a device's tree inventory records).</param>
/// <param name="Length">Bytes in the file.</param>
public readonly record struct PatchBase(string Sha256, long Length);

/// <summary>One patched chunk of the release.</summary>
/// <param name="Chunk">Ordinal of the chunk in the manifest's distinct chunks (<see cref="PackIndex.ChunkOrder"/>).</param>
/// <param name="Base">Ordinal of the base file in <see cref="ChunkPatchIndex.Bases"/>.</param>
/// <param name="BaseOffset">First byte of the base region in that file.</param>
/// <param name="BaseLength">Bytes of the base region (1 .. <see cref="ChunkPatchIndex.MaxBaseRegion"/>).</param>
/// <param name="Pack">Ordinal of the pack in <see cref="ChunkPatchIndex.Packs"/> holding the patch object.</param>
/// <param name="Offset">First byte of the patch object in the pack.</param>
/// <param name="Stored">Stored length of the patch object (header + ciphertext + tag).</param>
/// <param name="PatchId">Id of the patch object (SHA-256 of its stored bytes): what the pack range must hash to.</param>
public readonly record struct ChunkPatchEntry(int Chunk, int Base, long BaseOffset, int BaseLength, int Pack, long Offset, int Stored, ChunkId PatchId)
{
    /// <summary>Plaintext length of the patch (a zstd frame), stored uncompressed in the patch object.</summary>
    public int PatchLength => Stored - ChunkCodec.HeaderLength - ChunkCodec.TagLength;
}

/// <summary>A patched chunk resolved against the manifest and the index.</summary>
/// <param name="Chunk">The chunk the patch rebuilds (its plaintext must match the manifest's tag and length).</param>
/// <param name="BaseSha256">SHA-256 of the base file the device must hold.</param>
/// <param name="BaseOffset">First byte of the base region.</param>
/// <param name="BaseLength">Bytes of the base region.</param>
/// <param name="Patch">Where the patch object lies: <see cref="PackedChunk.Chunk"/> is the patch object's id.</param>
/// <param name="PatchLength">Plaintext length of the patch.</param>
public readonly record struct PatchedChunk(ChunkId Chunk, string BaseSha256, long BaseOffset, int BaseLength, PackedChunk Patch, int PatchLength);

/// <summary>
/// The signed chunk patch index of one release (docs/store-format.md, "Chunk patches"): for new chunks of the release, a
/// zstd patch that rebuilds the chunk's plaintext from a region of a file of an earlier release (the base), stored as an
/// encrypted object inside a pack. A device that holds a file with the base's SHA-256 fetches the patch with the same
/// coalesced Range requests as packed chunks instead of the chunk. Bound to exactly one manifest (and records the base
/// release's manifest) by SHA-256; chunks it does not list are fetched as chunks.
/// </summary>
/// <param name="ManifestSha256">Lower-case hex SHA-256 of the exact manifest bytes this index belongs to.</param>
/// <param name="BaseManifestSha256">Lower-case hex SHA-256 of the manifest of the release the patches were coded against.</param>
/// <param name="Bases">Base files, each used at least once, distinct.</param>
/// <param name="Packs">Packs holding the patch objects, each used at least once, distinct.</param>
/// <param name="Entries">Patched chunks, sorted by strictly increasing <see cref="ChunkPatchEntry.Chunk"/>.</param>
public sealed record ChunkPatchIndex(string ManifestSha256, string BaseManifestSha256, IReadOnlyList<PatchBase> Bases,
    IReadOnlyList<PackInfo> Packs, IReadOnlyList<ChunkPatchEntry> Entries)
{
    /// <summary>Format version this code writes and reads.</summary>
    public const byte FormatVersion = 1;

    /// <summary>Largest base region: with the chunk it bounds what a device holds to apply one patch.</summary>
    public const int MaxBaseRegion = 1024 * 1024;

    /// <summary>Largest patch object: never larger than a chunk object may be, so applying one is bounded too.</summary>
    public const int MaxStored = 1024 * 1024;

    /// <summary>zstd window log every chunk patch is coded and applied with (base region + chunk fit in 2^23 bytes).</summary>
    public const int WindowLog = Deltas.PatchCodec.MinWindowLog;

    private static ReadOnlySpan<byte> Magic => "OCP1"u8;
    private const int HeaderLength = 4 + 4 + 32 + 32 + 4 + 4 + 4;
    private const int BaseRecordLength = 32 + 8;
    private const int PackRecordLength = 32 + 4;
    private const int EntryRecordLength = 4 + 4 + 8 + 4 + 4 + 4 + 4 + 32;

    /// <summary>Largest signed index a manifest with <paramref name="chunkCount"/> distinct chunks can have (a base and a pack per chunk).</summary>
    public static long MaxSignedLength(int chunkCount) =>
        HeaderLength + (long)chunkCount * (BaseRecordLength + PackRecordLength + EntryRecordLength) + ManifestSigner.SignatureLength;

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
        Validate(Bases, Packs, Entries, int.MaxValue);
        RequireHash(ManifestSha256, "manifest");
        RequireHash(BaseManifestSha256, "base manifest");
        var bytes = new byte[HeaderLength + Bases.Count * BaseRecordLength + Packs.Count * PackRecordLength + Entries.Count * EntryRecordLength];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        span[4] = FormatVersion;
        Convert.FromHexString(ManifestSha256).CopyTo(span[8..40]);
        Convert.FromHexString(BaseManifestSha256).CopyTo(span[40..72]);
        BinaryPrimitives.WriteUInt32LittleEndian(span[72..], (uint)Bases.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(span[76..], (uint)Packs.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(span[80..], (uint)Entries.Count);
        var at = HeaderLength;
        foreach (var b in Bases)
        {
            Convert.FromHexString(b.Sha256).CopyTo(span[at..]);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 32)..], (ulong)b.Length);
            at += BaseRecordLength;
        }
        foreach (var p in Packs)
        {
            Convert.FromHexString(p.Id.Hex).CopyTo(span[at..]);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 32)..], (uint)p.Length);
            at += PackRecordLength;
        }
        foreach (var e in Entries)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[at..], (uint)e.Chunk);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)e.Base);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], (ulong)e.BaseOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 16)..], (uint)e.BaseLength);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 20)..], (uint)e.Pack);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 24)..], (uint)e.Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 28)..], (uint)e.Stored);
            Convert.FromHexString(e.PatchId.Hex).CopyTo(span[(at + 32)..]);
            at += EntryRecordLength;
        }
        return bytes;
    }

    private static void RequireHash(string hex, string what)
    {
        if (hex.Length != 64 || !hex.All(Uri.IsHexDigit) || hex.Any(char.IsUpper))
            throw new InvalidInputException($"Chunk patch index {what} SHA-256 '{hex}' is not 64 lower-case hex digits.");
    }

    /// <summary>
    /// Verifies the trailing signature with <paramref name="key"/> first, then parses strictly and checks the index
    /// belongs to the manifest whose exact bytes hash to <paramref name="manifestSha256"/> with
    /// <paramref name="chunkCount"/> distinct chunks. Throws <see cref="IntegrityException"/> for a bad signature and
    /// <see cref="InvalidInputException"/> for a signed but invalid or foreign index.
    /// </summary>
    public static ChunkPatchIndex VerifyAndParse(ReadOnlySpan<byte> signed, ReleasePublicKey key, string manifestSha256, int chunkCount)
    {
        var body = SignedIndexEnvelope.VerifiedBody(signed, key, HeaderLength, "Chunk patch index");
        var index = Parse(body, chunkCount);
        if (index.ManifestSha256 != manifestSha256)
            throw new InvalidInputException($"Chunk patch index belongs to the manifest with SHA-256 {index.ManifestSha256}, not {manifestSha256}: it is another release's index.");
        return index;
    }

    /// <summary>Parses an unsigned index body strictly: exact length, known version, zero reserved bytes, every rule of <see cref="Validate"/>.</summary>
    internal static ChunkPatchIndex Parse(ReadOnlySpan<byte> body, int chunkCount)
    {
        SignedIndexEnvelope.CheckHeader(body, HeaderLength, "OCP1", FormatVersion, "Chunk patch index", "the chunks are fetched instead");
        var baseCount = BinaryPrimitives.ReadUInt32LittleEndian(body[72..]);
        var packCount = BinaryPrimitives.ReadUInt32LittleEndian(body[76..]);
        var entryCount = BinaryPrimitives.ReadUInt32LittleEndian(body[80..]);
        var expected = HeaderLength + (long)baseCount * BaseRecordLength + (long)packCount * PackRecordLength + (long)entryCount * EntryRecordLength;
        if (expected != body.Length)
            throw new InvalidInputException($"Chunk patch index declares {baseCount} bases, {packCount} packs and {entryCount} entries ({expected} bytes) but holds {body.Length} bytes.");
        var at = HeaderLength;
        var bases = new PatchBase[baseCount];
        for (var i = 0; i < bases.Length; i++, at += BaseRecordLength)
        {
            var length = BinaryPrimitives.ReadUInt64LittleEndian(body[(at + 32)..]);
            if (length > long.MaxValue) throw new InvalidInputException($"Chunk patch index base {i} has a length above 2^63.");
            bases[i] = new PatchBase(Convert.ToHexStringLower(body.Slice(at, 32)), (long)length);
        }
        var packs = new PackInfo[packCount];
        for (var i = 0; i < packs.Length; i++, at += PackRecordLength)
            packs[i] = new PackInfo(ChunkId.Parse(Convert.ToHexStringLower(body.Slice(at, 32))), BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 32)..]));
        var entries = new ChunkPatchEntry[entryCount];
        for (var i = 0; i < entries.Length; i++, at += EntryRecordLength)
        {
            var chunk = BinaryPrimitives.ReadUInt32LittleEndian(body[at..]);
            var baseOrdinal = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 4)..]);
            var baseOffset = BinaryPrimitives.ReadUInt64LittleEndian(body[(at + 8)..]);
            var baseLength = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 16)..]);
            var pack = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 20)..]);
            var offset = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 24)..]);
            var stored = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 28)..]);
            if (chunk > int.MaxValue || baseOrdinal > int.MaxValue || baseOffset > long.MaxValue || baseLength > int.MaxValue || pack > int.MaxValue || stored > int.MaxValue)
                throw new InvalidInputException($"Chunk patch index entry {i} has a field above its range.");
            entries[i] = new ChunkPatchEntry((int)chunk, (int)baseOrdinal, (long)baseOffset, (int)baseLength, (int)pack, offset, (int)stored,
                ChunkId.Parse(Convert.ToHexStringLower(body.Slice(at + 32, 32))));
        }
        Validate(bases, packs, entries, chunkCount);
        return new ChunkPatchIndex(Convert.ToHexStringLower(body[8..40]), Convert.ToHexStringLower(body[40..72]), bases, packs, entries);
    }

    /// <summary>
    /// Rules of a valid index: bases distinct and each used; packs distinct, 1 .. <see cref="PackIndex.MaxPackBytes"/>
    /// long and each used; entries sorted by strictly increasing chunk ordinal below <paramref name="chunkCount"/>, each
    /// base region 1 .. <see cref="MaxBaseRegion"/> bytes inside its base file, each patch object inside its pack, longer
    /// than an object's header and tag and at most <see cref="MaxStored"/>.
    /// </summary>
    private static void Validate(IReadOnlyList<PatchBase> bases, IReadOnlyList<PackInfo> packs, IReadOnlyList<ChunkPatchEntry> entries, int chunkCount)
    {
        var baseUsed = new bool[bases.Count];
        var packUsed = new bool[packs.Count];
        var hashes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var b in bases)
        {
            RequireHash(b.Sha256, "base file");
            if (b.Length < 1) throw new InvalidInputException($"Chunk patch index base {b.Sha256} is {b.Length} bytes long; a base file holds at least 1 byte.");
            if (!hashes.Add(b.Sha256)) throw new InvalidInputException($"Base file {b.Sha256} is listed twice in the chunk patch index.");
        }
        var ids = new HashSet<ChunkId>();
        foreach (var p in packs)
        {
            if (p.Length is < 1 or > PackIndex.MaxPackBytes)
                throw new InvalidInputException($"Pack {p.Id} is {p.Length} bytes long; a pack holds 1 .. {PackIndex.MaxPackBytes} bytes.");
            if (!ids.Add(p.Id)) throw new InvalidInputException($"Pack {p.Id} is listed twice in the chunk patch index.");
        }
        var previous = -1;
        foreach (var e in entries)
        {
            if (e.Chunk <= previous) throw new InvalidInputException($"Chunk patch index entries are not sorted by strictly increasing chunk ordinal at ordinal {e.Chunk}.");
            if (e.Chunk >= chunkCount) throw new InvalidInputException($"Chunk patch index entry names chunk ordinal {e.Chunk}, but the manifest has {chunkCount} distinct chunks.");
            if (e.Base < 0 || e.Base >= bases.Count) throw new InvalidInputException($"Chunk patch index entry for chunk ordinal {e.Chunk} names base {e.Base} of {bases.Count}.");
            if (e.BaseLength is < 1 or > MaxBaseRegion || e.BaseOffset < 0 || e.BaseOffset + e.BaseLength > bases[e.Base].Length)
                throw new InvalidInputException($"Chunk patch index entry for chunk ordinal {e.Chunk}: base region of {e.BaseLength} bytes at {e.BaseOffset} is not 1 .. {MaxBaseRegion} bytes inside its {bases[e.Base].Length}-byte base file.");
            if (e.Pack < 0 || e.Pack >= packs.Count) throw new InvalidInputException($"Chunk patch index entry for chunk ordinal {e.Chunk} names pack {e.Pack} of {packs.Count}.");
            if (e.Stored <= ChunkCodec.HeaderLength + ChunkCodec.TagLength || e.Stored > MaxStored || e.Offset < 0 || e.Offset + e.Stored > packs[e.Pack].Length)
                throw new InvalidInputException($"Chunk patch index entry for chunk ordinal {e.Chunk} ({e.Stored} bytes at {e.Offset}) does not fit a patch object of at most {MaxStored} bytes inside pack {packs[e.Pack].Id}.");
            baseUsed[e.Base] = true;
            packUsed[e.Pack] = true;
            previous = e.Chunk;
        }
        for (var i = 0; i < baseUsed.Length; i++)
            if (!baseUsed[i]) throw new InvalidInputException($"Base file {bases[i].Sha256} is listed in the chunk patch index but no entry uses it.");
        for (var i = 0; i < packUsed.Length; i++)
            if (!packUsed[i]) throw new InvalidInputException($"Pack {packs[i].Id} is listed in the chunk patch index but holds none of its patches.");
    }

    /// <summary>The patched chunks by chunk id, resolved against the manifest's <see cref="PackIndex.ChunkOrder"/>.</summary>
    public Dictionary<ChunkId, PatchedChunk> Resolve(IReadOnlyList<ChunkId> chunkOrder)
    {
        ArgumentNullException.ThrowIfNull(chunkOrder);
        var resolved = new Dictionary<ChunkId, PatchedChunk>(Entries.Count);
        foreach (var e in Entries)
        {
            var chunk = chunkOrder[e.Chunk];
            resolved[chunk] = new PatchedChunk(chunk, Bases[e.Base].Sha256, e.BaseOffset, e.BaseLength,
                new PackedChunk(e.PatchId, Packs[e.Pack].Id, e.Offset, e.Stored), e.PatchLength);
        }
        return resolved;
    }

    /// <summary>
    /// The patch index the store holds next to a manifest, read by the store's own tools (planner, gc), which need no
    /// signature check: null when there is none, it does not parse, or it belongs to other manifest bytes.
    /// </summary>
    public static ChunkPatchIndex? ReadStored(Storage.IContentStore store, string manifestPath, ReadOnlySpan<byte> manifestBytes, Manifest manifest)
    {
        ArgumentNullException.ThrowIfNull(store);
        var signed = store.ReadFile(Storage.StoreLayout.ChunkPatchIndexPathFor(manifestPath));
        if (signed is null || signed.Length < ManifestSigner.SignatureLength) return null;
        try
        {
            var index = Parse(signed.AsSpan(0, signed.Length - ManifestSigner.SignatureLength), PackIndex.ChunkOrder(manifest).Count);
            return index.ManifestSha256 == PackIndex.ManifestHashOf(manifestBytes) ? index : null;
        }
        catch (InvalidInputException)
        {
            return null;
        }
    }
}
