using System.Security.Cryptography;
using Orchestrator.ChunkStore.Codec;
using Orchestrator.ChunkStore.Keys;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.DeviceAgent.Zones;

namespace Orchestrator.DeviceAgent.Install;

/// <summary>Where one chunk's plaintext belongs in a file of the release being built.</summary>
/// <param name="File">The manifest file.</param>
/// <param name="Offset">Byte offset of the chunk in it.</param>
/// <param name="Chunk">The chunk (its plaintext length and tag).</param>
/// <param name="ChunkOffset">Start of the slice of the chunk's plaintext that goes there (0 unless a small-file stream chunk).</param>
/// <param name="Length">Length of that slice (the whole chunk unless a small-file stream chunk).</param>
public sealed record ChunkPlace(ManifestFile File, long Offset, ChunkRef Chunk, int ChunkOffset, int Length)
{
    /// <summary>The place of a file piece (<see cref="ManifestFile.Pieces"/>).</summary>
    public ChunkPlace(ManifestFile file, FilePiece piece) : this(file, piece.FileOffset, piece.Chunk, piece.ChunkOffset, piece.Length) { }
}

/// <summary>
/// The files of a release that are not already on the device (changed, added or damaged ones), built in place in
/// <c>.orch-agent/building</c>: each fetched or locally found chunk is written once, straight into its place(s), and the
/// finished files are hard-linked into the staging tree that <see cref="TreeInstaller"/> swaps in. Unchanged files are
/// never here (they are linked from the installed tree into staging), so nothing of the release is written twice.
/// <para>
/// A build survives a kill and is resumed by the next attempt at the same release (the marker file
/// <c>building.target</c> holds the manifest's SHA-256; another release starts from empty). Resumed bytes are trusted
/// range by range only after their keyed plaintext tag (<see cref="ChunkCodec.ManifestTag"/>) matches the manifest's,
/// so a torn, lost or damaged range is fetched again, never installed; each file's SHA-256 is checked when it is done.
/// </para>
/// <para>
/// Invariant: while the marker exists, no file of the build shares its inode with the installed tree. Links into
/// staging are made only when every file is done, staging is discarded by recovery when no swap was journaled, and the
/// marker is removed before the swap's journal is written (<see cref="Seal"/>), so a build left behind by a finished
/// swap is discarded, never written into.
/// </para>
/// </summary>
public sealed class TreeBuild
{
    private readonly string _marker;
    private readonly bool _resumed;

    private TreeBuild(string root, string marker, bool resumed)
    {
        Root = root;
        _marker = marker;
        _resumed = resumed;
    }

    /// <summary>The build folder of a layout.</summary>
    public static string FolderOf(ZoneLayout layout) => Path.Combine(layout.Work, "building");

    /// <summary>The folder the files are built in.</summary>
    public string Root { get; }

    /// <summary>
    /// Opens the build of the release whose manifest has SHA-256 <paramref name="manifestSha256"/>: the build an
    /// earlier attempt left for the same release is resumed, anything else is discarded.
    /// </summary>
    public static TreeBuild Open(ZoneLayout layout, string manifestSha256)
    {
        var root = FolderOf(layout);
        var marker = root + ".target";
        var resumed = Directory.Exists(root) && ReadMarker(marker) == manifestSha256;
        if (!resumed)
        {
            DurableFile.TryDelete(marker);
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
            Directory.CreateDirectory(root);
            DurableFile.WriteAllBytes(marker, System.Text.Encoding.ASCII.GetBytes(manifestSha256));
        }
        return new TreeBuild(root, marker, resumed);
    }

    private static string? ReadMarker(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() : null; }
        catch (IOException) { return null; }
    }

    /// <summary>Full path of a manifest path in the build (refused when it would escape it).</summary>
    public string PathOf(string relative) => TreeInventory.ResolveInside(Root, relative);

    /// <summary>
    /// Which chunks of <paramref name="file"/> an earlier attempt already wrote, verified by their tags; all false for a
    /// file this build has not written. A file of the wrong length or that is not a regular file is discarded.
    /// </summary>
    public bool[] Verified(ManifestFile file, ContentKey key)
    {
        var done = new bool[file.Chunks.Count];
        if (!_resumed) return done;
        var path = PathOf(file.Path);
        var info = new FileInfo(path);
        if (!info.Exists) return done;
        if (info.LinkTarget is not null || info.Length != file.Size)
        {
            DurableFile.TryDelete(path);
            return done;
        }
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.SequentialScan);
        // A stream file holds slices of chunks, which have no tags of their own: it is resumed whole, by its hash.
        if (file.InStream)
        {
            if (Convert.ToHexStringLower(SHA256.HashData(fs)) == file.Sha256) Array.Fill(done, true);
            return done;
        }
        var buffer = new byte[file.Chunks.Count == 0 ? 0 : file.Chunks.Max(c => c.Length)];
        for (var i = 0; i < file.Chunks.Count; i++)
        {
            var c = file.Chunks[i];
            fs.ReadExactly(buffer, 0, c.Length);
            done[i] = ChunkCodec.ManifestTag(buffer.AsSpan(0, c.Length), key) == c.Tag;
        }
        return done;
    }

    /// <summary>
    /// Makes sure <paramref name="file"/> exists in the build at its final length, so chunks can be written into it in
    /// any order; a new file is sparse (nothing is written until its chunks are).
    /// </summary>
    public void Allocate(ManifestFile file)
    {
        var path = PathOf(file.Path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // A resumed file may carry its release mode (read-only); the build's own file is writable while it is built.
        if (File.Exists(path) && !OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        if (RandomAccess.GetLength(handle) != file.Size) RandomAccess.SetLength(handle, file.Size);
    }

    /// <summary>Writes one chunk's plaintext (its slice, for a small-file stream chunk) into each of its places (files <see cref="Allocate"/>d before).</summary>
    public void Write(IEnumerable<ChunkPlace> places, ReadOnlySpan<byte> plaintext)
    {
        foreach (var place in places)
        {
            using var handle = File.OpenHandle(PathOf(place.File.Path), FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            RandomAccess.Write(handle, plaintext.Slice(place.ChunkOffset, place.Length), place.Offset);
        }
    }

    /// <summary>Writes a piece of a file <see cref="Allocate"/>d before at <paramref name="offset"/> (whole-release delta output, verified by <see cref="Finish"/>).</summary>
    public void WriteAt(string relative, long offset, ReadOnlySpan<byte> content)
    {
        using var handle = File.OpenHandle(PathOf(relative), FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        RandomAccess.Write(handle, content, offset);
    }

    /// <summary>Writes a whole file built elsewhere in memory (a delta patch's verified result).</summary>
    public void WriteWhole(string relative, ReadOnlySpan<byte> content)
    {
        var path = PathOf(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        DurableFile.WriteAllBytes(path, content);
    }

    /// <summary>
    /// Checks a built file against the manifest (length and SHA-256) and gives it its mode; a file that does not match
    /// is discarded, so the next attempt builds it again.
    /// </summary>
    /// <returns>Null when the file is right, otherwise what is wrong with it.</returns>
    public string? Finish(ManifestFile file)
    {
        var path = PathOf(file.Path);
        string actual;
        long length;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
        {
            length = fs.Length;
            actual = Convert.ToHexStringLower(SHA256.HashData(fs));
        }
        if (length != file.Size || actual != file.Sha256)
        {
            DurableFile.TryDelete(path);
            return $"built '{file.Path}' is {length} bytes with SHA-256 {actual}; the manifest says {file.Size} bytes, {file.Sha256}";
        }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, (UnixFileMode)file.Mode);
        return null;
    }

    /// <summary>
    /// Puts a finished file into the staging tree: a hard link (no byte written), or where links are not possible the
    /// file itself is moved there (the build then loses it if the swap does not happen).
    /// </summary>
    public void Stage(ManifestFile file, string target)
    {
        var path = PathOf(file.Path);
        if (!HardLink.TryCreate(path, target)) File.Move(path, target);
    }

    /// <summary>
    /// Ends the build's claim on its files before the swap is journaled: once staging is linked in, a build found later
    /// without its marker is discarded instead of resumed.
    /// </summary>
    public void Seal()
    {
        DurableFile.TryDelete(_marker);
        DurableFile.SyncDirectory(Path.GetDirectoryName(_marker)!);
    }

    /// <summary>Deletes the build folder and its marker (after the swap; left-overs are discarded by the next <see cref="Open"/>).</summary>
    public void Discard()
    {
        DurableFile.TryDelete(_marker);
        try { if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* discarded by the next Open */ }
    }
}
