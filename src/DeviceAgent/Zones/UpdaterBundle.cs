using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>
/// The updater as a list of files (relative path, SHA-256, mode bits, bytes) that can be serialized into one blob for
/// the hidden backup and written back out to a folder with the recorded modes. It holds every byte in memory, so it is
/// only built when a backup is sealed or a repair needs it; checks stream (<see cref="UpdaterTree"/>).
/// </summary>
public sealed class UpdaterBundle
{
    /// <summary>One file of the updater.</summary>
    public sealed record Entry(string Path, string Sha256, UnixFileMode Mode, byte[] Content);

    /// <summary>Files, sorted by ordinal path.</summary>
    public IReadOnlyList<Entry> Entries { get; }

    private UpdaterBundle(IReadOnlyList<Entry> entries) =>
        Entries = entries.OrderBy(e => e.Path, StringComparer.Ordinal).ToList();

    /// <summary>Digest of the tree, modes included (<see cref="UpdaterTree.Digest"/>).</summary>
    public string Digest => UpdaterTree.Digest(Entries.Select(e => new UpdaterTree.FileState(e.Path, e.Sha256, e.Mode)));

    /// <summary>Reads every regular file under <paramref name="folder"/>.</summary>
    public static UpdaterBundle FromFolder(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"updater folder '{folder}' does not exist");
        var entries = new List<Entry>();
        foreach (var (rel, full) in TreeInventory.Files(folder))
        {
            var bytes = File.ReadAllBytes(full);
            entries.Add(new Entry(rel, Convert.ToHexStringLower(SHA256.HashData(bytes)), UpdaterTree.ModeOf(full), bytes));
        }
        return new UpdaterBundle(entries);
    }

    /// <summary>
    /// Serializes for the hidden backup: <c>OUB3</c> and the zstd-compressed <c>OUB2</c> form (<see cref="ToUncompressedBytes"/>).
    /// The backup is one of the updater's stored copies; compressed, it costs about half the binary's size.
    /// </summary>
    public byte[] ToBytes()
    {
        var plain = ToUncompressedBytes();
        using var compressor = new ZstdSharp.Compressor(CompressionLevel);
        var packed = compressor.Wrap(plain);
        var output = new byte[4 + packed.Length];
        "OUB3"u8.CopyTo(output);
        packed.CopyTo(output.AsSpan(4));
        return output;
    }

    // Sealing happens at provisioning and after a repair, never on an idle start: a higher level costs little.
    private const int CompressionLevel = 9;

    /// <summary>Most bytes an <c>OUB3</c> backup may expand to (a damaged or hostile length is refused, not allocated).</summary>
    public const int MaxUncompressedBytes = 1 << 30;

    /// <summary>The uncompressed form: <c>OUB2</c>, count, then per file: path, hash, mode, length, bytes.</summary>
    public byte[] ToUncompressedBytes()
    {
        using var ms = new MemoryStream();
        ms.Write("OUB2"u8);
        WriteInt(ms, Entries.Count);
        foreach (var e in Entries)
        {
            var p = Encoding.UTF8.GetBytes(e.Path);
            WriteInt(ms, p.Length);
            ms.Write(p);
            ms.Write(Convert.FromHexString(e.Sha256));
            WriteInt(ms, (int)(e.Mode & UpdaterTree.ModeMask));
            WriteInt(ms, e.Content.Length);
            ms.Write(e.Content);
        }
        return ms.ToArray();
    }

    /// <summary>
    /// Parses a serialized bundle, compressed (<c>OUB3</c>) or not (<c>OUB2</c>, backups sealed before compression), and
    /// checks every file hash; null when the bytes are not a valid bundle. Bundles from before modes were recorded
    /// (<c>OUB1</c>) are not accepted: restoring them could not give the files their modes.
    /// </summary>
    public static UpdaterBundle? TryParse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.StartsWith("OUB3"u8))
        {
            byte[] plain;
            try
            {
                using var decompressor = new ZstdSharp.Decompressor();
                plain = decompressor.Unwrap(bytes[4..], MaxUncompressedBytes).ToArray();
            }
            catch (ZstdSharp.ZstdException)
            {
                return null;
            }
            return plain.AsSpan().StartsWith("OUB2"u8) ? TryParse(plain) : null;
        }
        try
        {
            if (!bytes.StartsWith("OUB2"u8)) return null;
            var pos = 4;
            var count = ReadInt(bytes, ref pos);
            var entries = new List<Entry>(Math.Min(count, 10_000));
            for (var i = 0; i < count; i++)
            {
                var pl = ReadInt(bytes, ref pos);
                var path = Encoding.UTF8.GetString(bytes.Slice(pos, pl));
                pos += pl;
                var hash = Convert.ToHexStringLower(bytes.Slice(pos, 32));
                pos += 32;
                var mode = ReadInt(bytes, ref pos);
                if ((mode & ~(int)UpdaterTree.ModeMask) != 0) return null;
                var len = ReadInt(bytes, ref pos);
                var content = bytes.Slice(pos, len).ToArray();
                pos += len;
                if (!TreeInventory.IsSafeRelativePath(path)) return null;
                if (Convert.ToHexStringLower(SHA256.HashData(content)) != hash) return null;
                entries.Add(new Entry(path, hash, (UnixFileMode)mode, content));
            }
            return pos == bytes.Length ? new UpdaterBundle(entries) : null;
        }
        catch (ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Makes <paramref name="folder"/> hold exactly this bundle: rewrites differing files, sets the recorded modes, removes extras.</summary>
    /// <returns>Relative paths that were written or removed.</returns>
    public IReadOnlyList<string> RestoreTo(string folder, Install.CrashPoints? crash = null)
    {
        Directory.CreateDirectory(folder);
        var changed = new List<string>();
        var wanted = Entries.ToDictionary(e => e.Path, StringComparer.Ordinal);
        foreach (var (rel, full) in TreeInventory.Files(folder).ToList())
        {
            if (!wanted.ContainsKey(rel))
            {
                File.Delete(full);
                changed.Add(rel);
            }
        }
        foreach (var e in Entries)
        {
            var full = Path.Combine(folder, e.Path);
            var sameContent = File.Exists(full) && TreeInventory.HashFile(full) == e.Sha256;
            if (sameContent && UpdaterTree.ModeOf(full) == e.Mode) continue;
            if (!sameContent)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                DurableFile.WriteAllBytes(full, e.Content);
            }
            UpdaterTree.SetMode(full, e.Mode);
            changed.Add(e.Path);
            crash?.Reached(Install.CrashPoints.UpdaterFileRestored);
        }
        return changed;
    }

    private static void WriteInt(Stream s, int v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        s.Write(b);
    }

    private static int ReadInt(ReadOnlySpan<byte> bytes, ref int pos)
    {
        var v = BinaryPrimitives.ReadInt32LittleEndian(bytes.Slice(pos, 4));
        pos += 4;
        if (v < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        return v;
    }
}
