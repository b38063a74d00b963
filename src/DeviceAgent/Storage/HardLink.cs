using System.Runtime.InteropServices;

namespace Orchestrator.DeviceAgent.Storage;

/// <summary>
/// Hard links (POSIX <c>link(2)</c>): a second directory entry for an existing file, written without copying a byte.
/// The staging tree takes unchanged files this way, so an upgrade or repair writes only what changed.
/// </summary>
public static partial class HardLink
{
    /// <summary>
    /// Creates <paramref name="newPath"/> as a hard link to <paramref name="existing"/>. False when the platform or the
    /// file system cannot (e.g. different file systems, no link support): the caller copies instead, and nothing was
    /// created.
    /// </summary>
    public static bool TryCreate(string existing, string newPath)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return false;
        return Link(existing, newPath) == 0;
    }

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string newPath);
}
