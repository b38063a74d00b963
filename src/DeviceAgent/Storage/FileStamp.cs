using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// What <c>statx(2)</c> says about a file that changes with every change made through the file system: device, inode,
/// size, mtime and ctime with nanoseconds. Any write, truncation, replacement (new inode), link count or mode change
/// sets ctime to the current time, and no unprivileged call can set ctime back (<c>touch -r</c> restores mtime only).
/// </summary>
public readonly partial record struct FileStamp(ulong Device, ulong Inode, long Size, long MtimeSeconds, uint MtimeNanoseconds,
    long CtimeSeconds, uint CtimeNanoseconds)
{
    private static bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>The stamp of <paramref name="path"/> (symbolic links not followed); null when it cannot be taken (no file, no statx).</summary>
    public static unsafe FileStamp? Of(string path)
    {
        if (_unavailable) return null;
        var buffer = stackalloc byte[StatxSize];
        int rc;
        try
        {
            rc = Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, buffer);
        }
        catch (EntryPointNotFoundException)
        {
            // A libc without statx: no stamps, so every check hashes (safe, only slower).
            _unavailable = true;
            return null;
        }
        if (rc != 0) return null;
        var b = new ReadOnlySpan<byte>(buffer, StatxSize);
        var mask = BinaryPrimitives.ReadUInt32LittleEndian(b);
        if ((mask & Needed) != Needed) return null;
        return new FileStamp(
            ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(b[136..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(b[140..]),
            BinaryPrimitives.ReadUInt64LittleEndian(b[32..]),
            BinaryPrimitives.ReadInt64LittleEndian(b[40..]),
            BinaryPrimitives.ReadInt64LittleEndian(b[112..]), BinaryPrimitives.ReadUInt32LittleEndian(b[120..]),
            BinaryPrimitives.ReadInt64LittleEndian(b[96..]), BinaryPrimitives.ReadUInt32LittleEndian(b[104..]));
    }

    /// <summary>When the file last changed (ctime).</summary>
    public DateTimeOffset Changed => DateTimeOffset.FromUnixTimeSeconds(CtimeSeconds).AddTicks(CtimeNanoseconds / 100);

    // struct statx has the same layout on every Linux architecture (256 bytes, fixed-width fields); statx(2).
    private const int StatxSize = 256;
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;
    // STATX_MTIME | STATX_CTIME | STATX_INO | STATX_SIZE
    private const uint Needed = 0x40 | 0x80 | 0x100 | 0x200;

    // BitConverter.IsLittleEndian holds on every platform the agent ships for (x64, arm64); the offsets read the
    // kernel's native-endian fields as little-endian.
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
