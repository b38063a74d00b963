using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>What the launcher's updater check found and did.</summary>
public enum SelfRepairOutcome
{
    /// <summary>The free-zone updater and the hidden backup match the sealed record.</summary>
    Intact,
    /// <summary>The free-zone updater was intact; the damaged or missing hidden backup was rebuilt from it.</summary>
    BackupRebuilt,
    /// <summary>The free-zone updater was damaged or missing and was restored from the hidden backup.</summary>
    RestoredFromHidden,
    /// <summary>Free copy and hidden backup were both unusable: both were rebuilt from the virtual zone's plain copy.</summary>
    RestoredFromVirtual,
    /// <summary>No source could give a verified updater (the virtual copy is missing or damaged too).</summary>
    Unrecoverable,
}

/// <summary>Result of <see cref="SelfRepair.Run"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Changed">Updater files rewritten, re-moded or removed in the free zone.</param>
/// <param name="Warnings">Damage found on the way (e.g. a damaged hidden backup), each naming what was done about it.</param>
/// <param name="Message">One-line summary for the operator.</param>
/// <param name="Version">The updater release now in the free zone (<see cref="UpdaterSeal.Version"/>); null when unrecoverable.</param>
public sealed record SelfRepairResult(SelfRepairOutcome Outcome, IReadOnlyList<string> Changed, IReadOnlyList<string> Warnings, string Message,
    string? Version = null);

/// <summary>What <see cref="SelfRepair.Inspect"/> found, without changing anything.</summary>
/// <param name="Record">The sealed record: ok, missing, damaged, older (an older sealed pair put back) or legacy (no modes).</param>
/// <param name="Free">The free-zone updater against the record: ok, damaged, missing or unverifiable.</param>
/// <param name="Backup">The hidden backup against the record: ok, damaged, missing or unverifiable.</param>
/// <param name="Image">The virtual zone's plain copy against the image digest sealed from it: ok, damaged, missing or unverifiable.</param>
/// <param name="Version">Updater release in the record, if any.</param>
/// <param name="Generation">Generation of the record, if any.</param>
public sealed record UpdaterHealth(string Record, string Free, string Backup, string Image, string? Version, long Generation)
{
    /// <summary>True when every item is ok.</summary>
    public bool AllOk => Record == "ok" && Free == "ok" && Backup == "ok" && Image == "ok";
}

/// <summary>
/// The launcher's first step (seed order): check the free-zone updater and the hidden backup against the sealed record
/// (<see cref="UpdaterSeal"/>) by streaming their digests; restore a damaged free copy from the hidden backup, else
/// from the virtual zone's plain copy; rebuild a damaged backup from a verified copy. Nothing is decrypted or read
/// whole while everything is intact. With a <see cref="StatIndex"/>, files whose stamp it vouches for are not read
/// either (the idle start's check is then a stat per file).
/// </summary>
public sealed class SelfRepair(ZoneLayout layout, HiddenZone hidden, StatIndex? index = null)
{
    /// <summary>The operator command that rebuilds everything the virtual zone can supply.</summary>
    public const string RecoverCommand = "orch-agent recover --from-virtual";

    /// <summary>Checks every copy of the updater by streaming, and changes nothing (<c>orch-agent status</c>).</summary>
    public UpdaterHealth Inspect()
    {
        var (sealState, sealBytes) = hidden.Read(HiddenItem.UpdaterDigest);
        var seal = sealState == HiddenItemState.Ok ? UpdaterSeal.Parse(sealBytes!) : null;
        var recordState = sealState switch
        {
            HiddenItemState.Missing => "missing",
            HiddenItemState.Damaged => "damaged",
            _ when seal is null => "damaged",
            _ when seal.Legacy => "legacy (no modes)",
            _ when hidden.ReadVersionRecord() is { } r && seal.Generation < r.UpdaterGeneration => "older (refused)",
            _ => "ok",
        };
        var usable = recordState == "ok" ? seal : null;
        var free = UpdaterTree.DigestOf(layout.FreeUpdater);
        var backupPath = layout.Hidden(HiddenItem.UpdaterBackup);
        var image = UpdaterTree.DigestOf(layout.VirtualUpdater);
        return new UpdaterHealth(recordState,
            free is null ? "missing" : usable is null ? "unverifiable" : free == usable.TreeDigest ? "ok" : "damaged",
            !File.Exists(backupPath) ? "missing" : usable is null ? "unverifiable" : UpdaterSeal.HashFile(backupPath) == usable.BackupSha256 ? "ok" : "damaged",
            image is null ? "missing" : usable?.ImageDigest is null ? "unverifiable" : image == usable.ImageDigest ? "ok" : "damaged",
            seal?.Version, seal?.Generation ?? 0);
    }

    /// <summary>Checks and, when needed, repairs the free-zone updater and the hidden backup.</summary>
    public SelfRepairResult Run(string? configPath = null)
    {
        var warnings = new List<string>();
        var (sealState, sealBytes) = hidden.Read(HiddenItem.UpdaterDigest);
        var seal = sealState == HiddenItemState.Ok ? UpdaterSeal.Parse(sealBytes!) : null;
        if (sealState == HiddenItemState.Ok && seal is null) sealState = HiddenItemState.Damaged;
        if (sealState != HiddenItemState.Ok)
            warnings.Add($"sealed updater record '{HiddenZone.FileName(HiddenItem.UpdaterDigest)}' is {sealState.ToString().ToLowerInvariant()}: neither the free-zone updater nor the hidden backup can be verified");
        if (seal is { Legacy: true })
        {
            warnings.Add("sealed updater record predates mode verification: it cannot vouch for file modes");
            seal = null;
        }
        if (seal is not null && hidden.ReadVersionRecord() is { } record && seal.Generation < record.UpdaterGeneration)
        {
            // Both items open with this device's key, so they are an older sealed pair put back: trust neither.
            warnings.Add($"hidden updater backup and digest are generation {seal.Generation}, older than the generation {record.UpdaterGeneration} " +
                         "this device last sealed (an older sealed copy was put back); refused");
            seal = null;
        }

        var freeDigest = UpdaterTree.DigestOf(layout.FreeUpdater, index);
        var backupPath = layout.Hidden(HiddenItem.UpdaterBackup);
        var backupExists = File.Exists(backupPath);
        var freeOk = seal is not null && freeDigest == seal.TreeDigest;
        var backupOk = seal is not null && backupExists && (index?.Hash(backupPath) ?? UpdaterSeal.HashFile(backupPath)) == seal.BackupSha256;
        if (index?.Save() is { } notSaved) warnings.Add(notSaved);
        if (freeOk && backupOk)
            return new SelfRepairResult(SelfRepairOutcome.Intact, [], warnings, $"updater intact (version {seal!.Version})", seal.Version);

        var backupWhy = !backupExists ? "missing" : "damaged";
        if (freeOk)
        {
            // The free copy verified against the sealed record, so it is as good a source as the backup was.
            var bundle = UpdaterBundle.FromFolder(layout.FreeUpdater);
            if (bundle.Digest == seal!.TreeDigest && TrySeal(bundle, seal.Version, seal.ImageDigest, warnings))
            {
                warnings.Add($"hidden updater backup was {backupWhy}; rebuilt from the verified free-zone updater");
                return new SelfRepairResult(SelfRepairOutcome.BackupRebuilt, [], warnings,
                    $"updater intact (version {seal.Version}); hidden backup rebuilt from it", seal.Version);
            }
            return new SelfRepairResult(SelfRepairOutcome.Intact, [], warnings,
                $"updater intact (version {seal.Version}); the {backupWhy} hidden backup could not be rebuilt", seal.Version);
        }

        var freeWhy = freeDigest is null ? "missing" : seal is null ? "unverifiable" : "damaged";
        if (backupOk)
        {
            // Only now is the backup decrypted: a repair needs its bytes.
            var (state, bytes) = hidden.Read(HiddenItem.UpdaterBackup);
            var backup = state == HiddenItemState.Ok ? UpdaterBundle.TryParse(bytes) : null;
            if (backup is not null && backup.Digest == seal!.TreeDigest)
            {
                var changed = backup.RestoreTo(layout.FreeUpdater);
                if (UpdaterTree.DigestOf(layout.FreeUpdater) == seal.TreeDigest)
                    return new SelfRepairResult(SelfRepairOutcome.RestoredFromHidden, changed, warnings,
                        $"updater restored from the hidden backup (version {seal.Version}; {Describe(changed)})", seal.Version);
                warnings.Add($"restored the updater from the hidden backup but '{layout.FreeUpdater}' still does not verify (disk full or read-only?)");
            }
            else
            {
                warnings.Add("hidden updater backup does not open or does not match the sealed record");
            }
        }
        else if (seal is not null)
        {
            warnings.Add($"hidden updater backup is {backupWhy}");
        }

        return FromVirtual(seal, freeWhy, warnings, configPath);
    }

    private SelfRepairResult FromVirtual(UpdaterSeal? seal, string freeWhy, List<string> warnings, string? configPath)
    {
        var recover = RecoverCommand + (configPath is null ? "" : $" --config {configPath}");
        var imageDigest = UpdaterTree.DigestOf(layout.VirtualUpdater);
        if (imageDigest is null || !Directory.EnumerateFiles(layout.VirtualUpdater, "*", SearchOption.AllDirectories).Any())
            return new SelfRepairResult(SelfRepairOutcome.Unrecoverable, [], warnings,
                $"the updater in the free zone ('{layout.FreeUpdater}') is {freeWhy}, the hidden backup is unusable and the virtual zone has no " +
                $"updater in '{layout.VirtualUpdater}': the device image is incomplete; reinstall the image, then run `{recover}`");
        if (seal?.ImageDigest is { } knownImage && knownImage != imageDigest)
            return new SelfRepairResult(SelfRepairOutcome.Unrecoverable, [], warnings,
                $"the updater in the free zone ('{layout.FreeUpdater}') is {freeWhy}, the hidden backup is unusable and the virtual zone's copy " +
                $"'{layout.VirtualUpdater}' differs from the image sealed at provisioning (damaged image): reinstall the device image, then run `{recover}`");
        if (seal?.ImageDigest is null)
            warnings.Add("the virtual zone's updater copy cannot be checked against a sealed image digest; using it as the device image");
        var image = UpdaterBundle.FromFolder(layout.VirtualUpdater);
        var changed = image.RestoreTo(layout.FreeUpdater);
        if (UpdaterTree.DigestOf(layout.FreeUpdater) != image.Digest)
            return new SelfRepairResult(SelfRepairOutcome.Unrecoverable, changed, warnings,
                $"restored the updater from the virtual zone but '{layout.FreeUpdater}' still does not verify (disk full or read-only?); fix the free zone and run `{recover}`");
        TrySeal(image, UpdaterSeal.ImageVersion, image.Digest, warnings);
        return new SelfRepairResult(SelfRepairOutcome.RestoredFromVirtual, changed, warnings,
            $"updater restored from the virtual zone's plain copy (free copy {freeWhy}, hidden backup unusable; {Describe(changed)}); hidden backup rebuilt from it",
            UpdaterSeal.ImageVersion);
    }

    private bool TrySeal(UpdaterBundle bundle, string version, string? imageDigest, List<string> warnings)
    {
        try
        {
            Seal(layout, hidden, bundle, version, imageDigest);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warnings.Add($"could not write the hidden updater backup to '{layout.Zones.Hidden}': {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// Seals <paramref name="bundle"/> as the hidden backup and writes the record for it at the next generation
    /// (remembered in the version record). The backup is written before the record: a kill in between leaves a record
    /// whose backup hash does not match, which the next start repairs from the verified free copy.
    /// </summary>
    public static UpdaterSeal Seal(ZoneLayout layout, HiddenZone hidden, UpdaterBundle bundle, string version, string? imageDigest,
        Install.CrashPoints? crash = null)
    {
        if (!UpdaterSeal.IsValidVersion(version))
            throw new ArgumentException($"updater version '{version}' cannot be recorded: use 1-64 printable characters without spaces", nameof(version));
        var record = hidden.ReadVersionRecord();
        var generation = Math.Max(record?.UpdaterGeneration ?? 0, UpdaterGeneration.Read(hidden).Generation) + 1;
        hidden.Write(HiddenItem.UpdaterBackup, bundle.ToBytes());
        crash?.Reached(Install.CrashPoints.UpdaterBackupWritten);
        var seal = new UpdaterSeal(bundle.Digest, generation, UpdaterSeal.HashFile(layout.Hidden(HiddenItem.UpdaterBackup)), version, imageDigest);
        hidden.Write(HiddenItem.UpdaterDigest, seal.Format());
        // The record remembers the generation, so a pair copied back from an older sealed copy is recognised as older.
        if (record is not null) hidden.WriteVersionRecord(record with { UpdaterGeneration = generation });
        return seal;
    }

    private static string Describe(IReadOnlyList<string> changed) =>
        $"{changed.Count} file(s){(changed.Count == 0 ? "" : ": " + string.Join(", ", changed.Take(5)) + (changed.Count > 5 ? ", …" : ""))}";
}
