using System.Globalization;

namespace Orchestrator.DeviceAgent.Download;

/// <summary>
/// Bytes received from the network for one install (one target version ID), across every session and agent restart
/// until that install completes: manifests, signatures, delta manifests, patch objects and chunks, including bytes that
/// were later discarded. The completion report's <c>bytesDownloaded</c> is this total.
/// <para>
/// Kept in a small text file (<c>&lt;target id&gt; &lt;bytes&gt;</c>) replaced atomically (temp + rename) at most every
/// <see cref="PersistEveryBytes"/>, so a killed agent loses at most that much of the count; a different target starts
/// from zero, and an unreadable file counts as zero.
/// </para>
/// </summary>
public sealed class InstallByteCounter
{
    /// <summary>The count is written to disk whenever this many bytes arrived since the last write.</summary>
    public const long PersistEveryBytes = 64 * 1024;

    private readonly string _path;
    private readonly Lock _gate = new();
    private long _total;
    private long _persisted;

    private InstallByteCounter(string path, long targetVersionId, long total)
    {
        _path = path;
        TargetVersionId = targetVersionId;
        _total = total;
        _persisted = total;
    }

    /// <summary>The install this counter belongs to.</summary>
    public long TargetVersionId { get; }

    /// <summary>Bytes counted so far for this install.</summary>
    public long Total { get { lock (_gate) return _total; } }

    /// <summary>Opens the count of <paramref name="targetVersionId"/> in <paramref name="path"/>; another target's count is discarded.</summary>
    public static InstallByteCounter Open(string path, long targetVersionId)
    {
        long total = 0;
        try
        {
            var parts = File.Exists(path) ? File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
            if (parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var target) && target == targetVersionId
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var bytes))
                total = bytes;
        }
        catch (IOException)
        {
            // An unreadable count restarts at zero: it is a report, never a reason to fail an install.
        }
        return new InstallByteCounter(path, targetVersionId, total);
    }

    /// <summary>Counts <paramref name="bytes"/> just received.</summary>
    public void Add(long bytes)
    {
        lock (_gate)
        {
            _total += bytes;
            if (_total - _persisted >= PersistEveryBytes) Persist();
        }
    }

    /// <summary>Writes the current count now.</summary>
    public void Flush()
    {
        lock (_gate) if (_total != _persisted) Persist();
    }

    /// <summary>Forgets the count (after the install's completion was reported).</summary>
    public void Delete()
    {
        try { File.Delete(_path); }
        catch (IOException) { /* a stale count for a finished target is discarded by the next Open */ }
    }

    private void Persist()
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            var temp = _path + ".tmp";
            File.WriteAllText(temp, string.Create(CultureInfo.InvariantCulture, $"{TargetVersionId} {_total}"));
            File.Move(temp, _path, overwrite: true);
            _persisted = _total;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Counting must never fail a download; the next write tries again.
        }
    }
}
