using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.ChunkStore.Validation;

namespace Orchestrator.ChunkStore.Trust;

/// <summary>
/// Where a batch-signed directive sits in its batch (docs/protocol.md "Directive", docs/store-format.md "Trust
/// documents"): the director signed one Merkle tree root (RFC 9162 shape) over several directive payloads, and this
/// proves that the envelope's payload is one of its leaves.
/// </summary>
/// <param name="Size">Number of directives the root covers (1 to <see cref="DirectiveBatch.MaxSize"/>).</param>
/// <param name="Index">The leaf index of this directive (0-based, below <paramref name="Size"/>).</param>
/// <param name="Root">Base64 of the 32-byte tree root the signatures cover (with the size, <see cref="DirectiveBatch.SignedMessage"/>).</param>
/// <param name="Path">Base64 of the 32-byte sibling hashes from the leaf up to the root (RFC 9162 audit path order).</param>
public sealed record BatchInclusion(int Size, int Index, string Root, IReadOnlyList<string> Path);

/// <summary>
/// The Merkle tree of batch-signed directives: leaf hash SHA-256(0x00 ‖ payload), interior hash SHA-256(0x01 ‖ left ‖
/// right), a tree of n leaves split at the largest power of two below n (RFC 9162 §2.1.1). The director signs
/// <see cref="SignedMessage"/> (a context string, the root and the leaf count), which no single-signed document can
/// equal: those are JSON and begin with '{'.
/// </summary>
public static class DirectiveBatch
{
    /// <summary>Longest inclusion path an agent walks; it bounds the batch to 2^16 directives.</summary>
    public const int MaxPathLength = 16;

    /// <summary>Most directives one root may cover.</summary>
    public const int MaxSize = 1 << MaxPathLength;

    /// <summary>Domain separation of the signed message (with a terminating NUL, then root, then size).</summary>
    public const string Context = "orchestrator directive batch v1";

    private const int HashLength = 32;

    /// <summary>RFC 9162 leaf hash of the exact payload bytes.</summary>
    public static byte[] LeafHash(ReadOnlySpan<byte> payload)
    {
        // One-shot over a copy with the prefix: a signer hashes a leaf per answer, and an incremental hash would be a
        // native hash context (and its finalizable handle) per leaf.
        var length = 1 + payload.Length;
        byte[]? rented = null;
        var buffer = length <= 1024 ? stackalloc byte[1024] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(length));
        try
        {
            buffer[0] = 0x00;
            payload.CopyTo(buffer[1..]);
            return SHA256.HashData(buffer[..length]);
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>RFC 9162 interior node hash.</summary>
    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[1 + 2 * HashLength];
        buffer[0] = 0x01;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + HashLength)..]);
        return SHA256.HashData(buffer);
    }

    /// <summary>The bytes the director signs for a batch: <see cref="Context"/>, NUL, the 32-byte root, the size (8 bytes big-endian).</summary>
    public static byte[] SignedMessage(ReadOnlySpan<byte> root, int size)
    {
        if (root.Length != HashLength) throw new ArgumentException($"a batch root is {HashLength} bytes, not {root.Length}.", nameof(root));
        var context = Encoding.ASCII.GetBytes(Context);
        var message = new byte[context.Length + 1 + HashLength + 8];
        context.CopyTo(message, 0);
        root.CopyTo(message.AsSpan(context.Length + 1));
        BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(context.Length + 1 + HashLength), size);
        return message;
    }

    /// <summary>
    /// Builds the tree over <paramref name="leafHashes"/> (1 to <see cref="MaxSize"/>): its root and each leaf's
    /// inclusion path (siblings from the leaf up).
    /// </summary>
    public static (byte[] Root, List<byte[]>[] Paths) Build(IReadOnlyList<byte[]> leafHashes)
    {
        if (leafHashes.Count is < 1 or > MaxSize)
            throw new ArgumentOutOfRangeException(nameof(leafHashes), $"a batch holds 1 to {MaxSize} directives, not {leafHashes.Count}.");
        var paths = new List<byte[]>[leafHashes.Count];
        for (var i = 0; i < paths.Length; i++) paths[i] = new List<byte[]>(PathLength(i, paths.Length));
        return (Subtree(leafHashes, paths, 0, leafHashes.Count), paths);
    }

    // MTH(D[lo:hi]); appends the sibling of each half to the paths of the other half's leaves after the deeper siblings.
    private static byte[] Subtree(IReadOnlyList<byte[]> leaves, List<byte[]>[] paths, int lo, int hi)
    {
        if (hi - lo == 1) return leaves[lo];
        var k = LargestPowerOfTwoBelow(hi - lo);
        var left = Subtree(leaves, paths, lo, lo + k);
        var right = Subtree(leaves, paths, lo + k, hi);
        for (var i = lo; i < lo + k; i++) paths[i].Add(right);
        for (var i = lo + k; i < hi; i++) paths[i].Add(left);
        return NodeHash(left, right);
    }

    private static int LargestPowerOfTwoBelow(int n)
    {
        var k = 1;
        while (k << 1 < n) k <<= 1;
        return k;
    }

    /// <summary>Length of the inclusion path of leaf <paramref name="index"/> in a tree of <paramref name="size"/> leaves (RFC 9162 §2.1.3.2).</summary>
    public static int PathLength(int index, int size)
    {
        long fn = index, sn = size - 1;
        var length = 0;
        while (sn > 0)
        {
            if ((fn & 1) == 1 || fn == sn)
            {
                if ((fn & 1) == 0)
                    while ((fn & 1) == 0 && fn != 0) { fn >>= 1; sn >>= 1; }
            }
            length++;
            fn >>= 1;
            sn >>= 1;
        }
        return length;
    }

    /// <summary>
    /// Checks the shape of <paramref name="batch"/> (size, index, root and path lengths, path length matching index and
    /// size) and returns the decoded root and path. <see cref="InvalidInputException"/> names what is wrong.
    /// </summary>
    public static (byte[] Root, byte[][] Path) Decode(BatchInclusion batch, string what)
    {
        if (batch.Size is < 1 or > MaxSize)
            throw new InvalidInputException($"{what}: batch size {batch.Size} is outside 1..{MaxSize}.");
        if (batch.Index < 0 || batch.Index >= batch.Size)
            throw new InvalidInputException($"{what}: leaf index {batch.Index} is outside a batch of {batch.Size} (wrong index).");
        if (batch.Path is null)
            throw new InvalidInputException($"{what}: the batch proof has no inclusion path.");
        if (batch.Path.Count > MaxPathLength)
            throw new InvalidInputException($"{what}: the inclusion path has {batch.Path.Count} hashes, more than the {MaxPathLength} allowed; refused unwalked.");
        var needed = PathLength(batch.Index, batch.Size);
        if (batch.Path.Count != needed)
            throw new InvalidInputException(
                $"{what}: the inclusion path has {batch.Path.Count} hashes, leaf {batch.Index} of a batch of {batch.Size} needs {needed} (truncated or extended path).");
        var root = HashOf(batch.Root, what, "batch root");
        var path = new byte[batch.Path.Count][];
        for (var i = 0; i < path.Length; i++) path[i] = HashOf(batch.Path[i], what, $"inclusion path hash {i}");
        return (root, path);
    }

    private static byte[] HashOf(string? base64, string what, string name)
    {
        byte[] bytes;
        try { bytes = Convert.FromBase64String(base64 ?? ""); }
        catch (FormatException ex) { throw new InvalidInputException($"{what}: the {name} is not base64.", ex); }
        if (bytes.Length != HashLength) throw new InvalidInputException($"{what}: the {name} is {bytes.Length} bytes, not {HashLength}.");
        return bytes;
    }

    /// <summary>
    /// The root that leaf <paramref name="index"/> of a tree of <paramref name="size"/> leaves with hash <paramref name="leaf"/>
    /// and audit path <paramref name="path"/> leads to (RFC 9162 §2.1.3.2); null when the path does not fit index and size.
    /// </summary>
    public static byte[]? RootFrom(byte[] leaf, int index, int size, IReadOnlyList<byte[]> path)
    {
        if (index < 0 || index >= size) return null;
        long fn = index, sn = size - 1;
        var r = leaf;
        foreach (var p in path)
        {
            if (sn == 0) return null;
            if ((fn & 1) == 1 || fn == sn)
            {
                r = NodeHash(p, r);
                if ((fn & 1) == 0)
                    while ((fn & 1) == 0 && fn != 0) { fn >>= 1; sn >>= 1; }
            }
            else
            {
                r = NodeHash(r, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 ? r : null;
    }

    /// <summary>
    /// Throws <see cref="IntegrityException"/> unless <paramref name="payload"/> with the decoded <paramref name="path"/>
    /// leads to <paramref name="root"/>.
    /// </summary>
    public static void CheckInclusion(ReadOnlySpan<byte> payload, BatchInclusion batch, byte[] root, byte[][] path, string what)
    {
        var computed = RootFrom(LeafHash(payload), batch.Index, batch.Size, path);
        if (computed is null || !CryptographicOperations.FixedTimeEquals(computed, root))
            throw new IntegrityException(
                $"{what}: the payload and its inclusion path (leaf {batch.Index} of {batch.Size}) do not lead to the signed batch root (an altered payload, or the path or index of another leaf).");
    }
}
