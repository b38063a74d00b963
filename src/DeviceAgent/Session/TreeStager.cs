using System.Security.Cryptography;
using Orchestrator.ChunkStore.Manifests;
using Orchestrator.DeviceAgent.Install;
using Orchestrator.DeviceAgent.Storage;
using Orchestrator.Messages.Protocol;

namespace Orchestrator.DeviceAgent.Session;

/// <summary>
/// Assembles a verified new tree in staging: unchanged files linked (or copied and verified), built files linked from the
/// build, symlinks made, and the whole staged tree's digest checked against the manifest before any swap.
/// </summary>
internal sealed class TreeStager(TreeInstaller installer, CrashPoints crash)
{
    /// <summary>
    /// Assembles the new tree in staging: unchanged files as hard links to the installed ones, every other file as a hard
    /// link to its finished, verified copy in the build; then checks the tree digest. Returns it with the staged files' hashes.
    /// </summary>
    public (string Digest, IReadOnlyList<InventoryEntry> Files) Stage(Manifest manifest, InstallPlan plan, TreeBuild build, CancellationToken ct)
    {
        var staging = installer.PrepareStaging();
        var linked = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in manifest.Files)
        {
            ct.ThrowIfCancellationRequested();
            string target;
            try
            {
                target = TreeInventory.ResolveInside(staging, f.Path);
            }
            catch (InvalidDataException e)
            {
                throw new SessionFailedException(FailureStage.Verify, e.Message, e);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (plan.ReuseFile.TryGetValue(f.Path, out var same))
            {
                if (!TryLinkUnchanged(same, target, f, linked)) CopyVerified(same, target, f);
            }
            else
            {
                if (build.Finish(f) is { } wrong)
                    throw new SessionFailedException(FailureStage.Verify, $"{wrong}; nothing installed, the next attempt builds it again");
                build.Stage(f, target);
            }
            crash.Reached(CrashPoints.FileStaged);
        }
        foreach (var link in manifest.Symlinks)
        {
            var at = TreeInventory.ResolveInside(staging, link.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(at)!);
            File.CreateSymbolicLink(at, link.Target);
        }
        var staged = TreeInventory.Scan(staging);
        var digest = InventoryDigest.Compute(staged.Select(e => (e.Path, e.Sha256)));
        if (digest != manifest.InventoryDigest)
            throw new SessionFailedException(FailureStage.Verify, $"staged tree digest {digest} differs from the manifest's {manifest.InventoryDigest}; nothing installed");
        return (digest, staged);
    }

    /// <summary>Copies an unchanged file that cannot be linked (see <see cref="TryLinkUnchanged"/>) into staging, verifying it.</summary>
    private static void CopyVerified(string source, string target, ManifestFile f)
    {
        using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            var buffer = new byte[1 << 16];
            int n;
            while ((n = input.Read(buffer)) > 0) { hash.AppendData(buffer, 0, n); output.Write(buffer, 0, n); }
            output.Flush(flushToDisk: true);
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (output.Length != f.Size || actual != f.Sha256)
                throw new SessionFailedException(FailureStage.Verify,
                    $"copied '{f.Path}' is {output.Length} bytes with SHA-256 {actual}; the manifest says {f.Size} bytes, {f.Sha256}; nothing installed");
        }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(target, (UnixFileMode)f.Mode);
    }

    /// <summary>
    /// Stages an unchanged file of the installed tree as a hard link to it, so it is not written again. The installed
    /// tree must stay exactly the old version until the swap, and a hard link shares the mode with its source, so a
    /// file is linked only when its mode is already the target's, and each source at most once (two manifest paths
    /// with equal content but different modes get a copy). Content is not re-read here: the staged tree is hashed as a
    /// whole before the swap.
    /// </summary>
    private static bool TryLinkUnchanged(string source, string target, ManifestFile f, HashSet<string> linked)
    {
        if (OperatingSystem.IsWindows() || linked.Contains(source)) return false;
        var info = new FileInfo(source);
        if (!info.Exists || info.LinkTarget is not null || info.Length != f.Size) return false;
        if (info.UnixFileMode != (UnixFileMode)f.Mode) return false;
        if (!HardLink.TryCreate(source, target)) return false;
        linked.Add(source);
        return true;
    }
}
