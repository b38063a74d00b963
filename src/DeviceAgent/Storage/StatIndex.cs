using System.Text;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// File hashes keyed by <see cref="FileStamp"/> (like git's index), so a check that finds a file's stamp unchanged
/// does not read it again. An entry vouches for a file only when
/// <list type="bullet">
/// <item>the stamp is the same as when the file was hashed (the file was stamped before and after hashing, with the
/// same result: it did not change while being read),</item>
/// <item>the file's ctime was at least <see cref="SettleTime"/> older than the hashing: a change made right after the
/// hash, within the file system's timestamp granularity, could otherwise leave the stamp as it was,</item>
/// <item>it was hashed less than <see cref="MaxTrust"/> ago (and not in the future): every file is read again at
/// least that often, which catches damage no stamp shows (media corruption below the file system).</item>
/// </list>
/// Anything else is hashed again. The index is sealed with the device key (<see cref="Zones.HiddenZone.Seal"/>): a
/// forged entry (a changed file's new stamp with its old hash) needs the key. An index that does not open is empty.
/// </summary>
public sealed class StatIndex
{
    /// <summary>How much older than its hashing a file's last change must be for its stamp to vouch for it.</summary>
    public static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(3);

    /// <summary>How long one hashing vouches for a file.</summary>
    public static readonly TimeSpan MaxTrust = TimeSpan.FromHours(24);

    private static ReadOnlySpan<byte> Magic => "OSI1"u8;

    // VerifiedAt: Unix seconds of the hashing that vouches for the stamp; 0 = the hash is only claimed (recorded at
    // install from the verified staging tree, stamped after the swap), so it is reported but always hashed again.
    private sealed record Entry(FileStamp Stamp, string Sha256, long VerifiedAt);

    private readonly string _path;
    private readonly string _label;
    private readonly Zones.HiddenZone _hidden;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, Entry> _entries;
    private bool _dirty;

    private StatIndex(string path, string label, Zones.HiddenZone hidden, TimeProvider time, Dictionary<string, Entry> entries)
    {
        _path = path;
        _label = label;
        _hidden = hidden;
        _time = time;
        _entries = entries;
    }

    /// <summary>Files hashed through this index (stamp changed, unsettled, expired or unknown).</summary>
    public int Hashed { get; private set; }

    /// <summary>Files whose hash came from a vouching entry.</summary>
    public int Reused { get; private set; }

    /// <summary>Opens the index at <paramref name="path"/>; empty when it is missing or does not open under this device's key.</summary>
    /// <param name="path">Index file.</param>
    /// <param name="hidden">Seals and opens it with the device key.</param>
    /// <param name="label">What it indexes, authenticated so one index cannot be passed off as another.</param>
    /// <param name="time">Clock (tests).</param>
    public static StatIndex Open(string path, Zones.HiddenZone hidden, string label, TimeProvider? time = null)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var fullLabel = "stat-index:" + label;
        try
        {
            if (File.Exists(path) && hidden.Open(fullLabel, File.ReadAllBytes(path)) is { } plain) entries = Parse(plain) ?? entries;
        }
        catch (IOException)
        {
        }
        return new StatIndex(path, fullLabel, hidden, time ?? TimeProvider.System, entries);
    }

    /// <summary>SHA-256 of a file: from the index when an entry vouches for it, else read (and recorded).</summary>
    public string Hash(string fullPath)
    {
        var now = _time.GetUtcNow();
        var before = FileStamp.Of(fullPath);
        if (before is { } stamp && _entries.TryGetValue(fullPath, out var e) && e.Stamp == stamp && Vouches(e, now))
        {
            Reused++;
            return e.Sha256;
        }
        var sha = TreeInventory.HashFile(fullPath);
        Hashed++;
        if (before is { } b && FileStamp.Of(fullPath) == b)
            Put(fullPath, new Entry(b, sha, now - b.Changed >= SettleTime ? now.ToUnixTimeSeconds() : 0));
        else if (_entries.Remove(fullPath))
            _dirty = true;
        return sha;
    }

    private static bool Vouches(Entry e, DateTimeOffset now)
    {
        if (e.VerifiedAt <= 0) return false;
        var age = now - DateTimeOffset.FromUnixTimeSeconds(e.VerifiedAt);
        return age >= TimeSpan.Zero && age < MaxTrust;
    }

    /// <summary>
    /// What the index says the regular files under <paramref name="root"/> hold, without reading or stamping any:
    /// a claim to be checked (<see cref="TreeInventory.Scan(string, StatIndex)"/>), sorted by ordinal path.
    /// </summary>
    public IReadOnlyList<InventoryEntry> Claimed(string root)
    {
        var prefix = Prefix(root);
        return _entries.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(kv => new InventoryEntry(kv.Key[prefix.Length..], kv.Value.Sha256))
            .OrderBy(e => e.Path, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Records the hashes of a tree just verified elsewhere (the staged tree, swapped in at <paramref name="root"/>)
    /// as claims: reported at the next check-in, hashed again at the next check. Other entries under the root are dropped.
    /// </summary>
    public void Claim(string root, IEnumerable<InventoryEntry> files)
    {
        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            var full = Path.Combine(root, f.Path);
            kept.Add(full);
            if (FileStamp.Of(full) is { } stamp) Put(full, new Entry(stamp, f.Sha256, 0));
            else if (_entries.Remove(full)) _dirty = true;
        }
        Retain(root, kept);
    }

    /// <summary>Drops the entries under <paramref name="root"/> for files not in <paramref name="present"/> (full paths).</summary>
    public void Retain(string root, IReadOnlySet<string> present)
    {
        var prefix = Prefix(root);
        foreach (var gone in _entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !present.Contains(k)).ToList())
        {
            _entries.Remove(gone);
            _dirty = true;
        }
    }

    /// <summary>Writes the index if anything changed. A write that fails is skipped: the index only saves reading.</summary>
    /// <returns>The error when the write failed, else null.</returns>
    public string? Save()
    {
        if (!_dirty) return null;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
            DurableFile.WriteAllBytes(_path, _hidden.Seal(_label, Format()), ownerOnly: true);
            _dirty = false;
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"stat index '{_path}' not written ({e.Message}); the next start hashes every file";
        }
    }

    private void Put(string fullPath, Entry e)
    {
        if (_entries.TryGetValue(fullPath, out var old) && old == e) return;
        _entries[fullPath] = e;
        _dirty = true;
    }

    private static string Prefix(string root) => Path.TrimEndingDirectorySeparator(root) + "/";

    private byte[] Format()
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(_entries.Count);
            foreach (var (path, e) in _entries)
            {
                w.Write(path);
                w.Write(e.Stamp.Device);
                w.Write(e.Stamp.Inode);
                w.Write(e.Stamp.Size);
                w.Write(e.Stamp.MtimeSeconds);
                w.Write(e.Stamp.MtimeNanoseconds);
                w.Write(e.Stamp.CtimeSeconds);
                w.Write(e.Stamp.CtimeNanoseconds);
                w.Write(Convert.FromHexString(e.Sha256));
                w.Write(e.VerifiedAt);
            }
        }
        return ms.ToArray();
    }

    private static Dictionary<string, Entry>? Parse(byte[] bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) return null;
            var count = r.ReadInt32();
            if (count < 0) return null;
            var entries = new Dictionary<string, Entry>(Math.Min(count, 100_000), StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                var path = r.ReadString();
                var stamp = new FileStamp(r.ReadUInt64(), r.ReadUInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadUInt32(), r.ReadInt64(), r.ReadUInt32());
                var sha = r.ReadBytes(32);
                if (sha.Length != 32) return null;
                entries[path] = new Entry(stamp, Convert.ToHexStringLower(sha), r.ReadInt64());
            }
            return r.BaseStream.Position == bytes.Length ? entries : null;
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }
}
