using Orchestrator.DeviceAgent.Storage;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>What the launcher's updater check found and did.</summary>
public enum SelfRepairOutcome
{
    /// <summary>The free-zone updater matches the recorded digest.</summary>
    Intact,
    /// <summary>The free-zone updater was damaged or missing and was restored from the hidden backup.</summary>
    RestoredFromHidden,
    /// <summary>Free and hidden copies are both unusable: only <c>recover --from-virtual</c> can help.</summary>
    Unrecoverable,
}

/// <summary>Result of <see cref="SelfRepair.Run"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Changed">Updater files rewritten or removed.</param>
/// <param name="Warnings">Problems that did not stop the start (e.g. a damaged hidden backup next to an intact free copy).</param>
/// <param name="Message">One-line summary for the operator.</param>
public sealed record SelfRepairResult(SelfRepairOutcome Outcome, IReadOnlyList<string> Changed, IReadOnlyList<string> Warnings, string Message);

/// <summary>
/// The seed's first launcher step: check the updater working copy in the free zone against the digest sealed in
/// the hidden zone; if it is missing or wrong, decrypt the hidden backup and restore it; if the hidden zone is
/// damaged too, stop and say how to recover from the virtual zone.
/// </summary>
public sealed class SelfRepair(ZoneLayout layout, HiddenZone hidden)
{
    /// <summary>The operator command printed when only the virtual zone can help.</summary>
    public const string RecoverCommand = "orch-agent recover --from-virtual";

    /// <summary>Checks and, when needed, restores the free-zone updater.</summary>
    public SelfRepairResult Run(string? configPath = null)
    {
        var warnings = new List<string>();
        var (digestState, digestBytes) = hidden.Read(HiddenItem.UpdaterDigest);
        var (backupState, backupBytes) = hidden.Read(HiddenItem.UpdaterBackup);
        var backup = backupState == HiddenItemState.Ok ? UpdaterBundle.TryParse(backupBytes) : null;
        if (backupState == HiddenItemState.Ok && backup is null) backupState = HiddenItemState.Damaged;

        var (expected, generation) = digestState == HiddenItemState.Ok ? UpdaterGeneration.Parse(digestBytes!) : (null, 0);
        if (digestState == HiddenItemState.Ok && expected is null) digestState = HiddenItemState.Damaged;
        if (hidden.ReadVersionRecord() is { } record && expected is not null && generation < record.UpdaterGeneration)
        {
            // Both items open with this device's key, so they are an older sealed pair put back: trust neither.
            warnings.Add($"hidden updater backup and digest are generation {generation}, older than the generation {record.UpdaterGeneration} " +
                         "this device last sealed (an older sealed copy was put back); refused");
            expected = null;
            backup = null;
            backupState = HiddenItemState.Damaged;
        }
        if (backup is not null && expected is not null && backup.Digest != expected)
        {
            // Both are sealed, so this only happens if one was replaced by an older sealed copy; trust neither.
            backup = null;
            backupState = HiddenItemState.Damaged;
        }
        expected ??= backup?.Digest;
        var recover = RecoverCommand + (configPath is null ? "" : $" --config {configPath}");
        if (backupState != HiddenItemState.Ok)
            warnings.Add($"hidden updater backup is {backupState.ToString().ToLowerInvariant()}; rebuild it with `{recover}`");

        var freeDigest = Directory.Exists(layout.FreeUpdater) ? TreeInventory.Digest(TreeInventory.Scan(layout.FreeUpdater)) : null;
        if (expected is not null && freeDigest == expected)
            return new SelfRepairResult(SelfRepairOutcome.Intact, [], warnings, "updater intact");

        if (backup is null)
        {
            var why = freeDigest is null ? "missing" : expected is null ? "unverifiable (no digest in the hidden zone)" : "damaged";
            return new SelfRepairResult(SelfRepairOutcome.Unrecoverable, [], warnings,
                $"the updater in the free zone ('{layout.FreeUpdater}') is {why} and the hidden backup in '{layout.Zones.Hidden}' is " +
                $"{backupState.ToString().ToLowerInvariant()}; restore both from the read-only virtual zone with `{recover}`");
        }

        var changed = backup.RestoreTo(layout.FreeUpdater);
        var after = TreeInventory.Digest(TreeInventory.Scan(layout.FreeUpdater));
        if (after != backup.Digest)
            return new SelfRepairResult(SelfRepairOutcome.Unrecoverable, changed, warnings,
                $"restored the updater from the hidden backup but '{layout.FreeUpdater}' still does not verify (disk full or read-only?); fix the free zone and run `{recover}`");
        return new SelfRepairResult(SelfRepairOutcome.RestoredFromHidden, changed, warnings,
            $"updater restored from the hidden backup ({changed.Count} file(s): {string.Join(", ", changed.Take(5))}{(changed.Count > 5 ? ", …" : "")})");
    }
}
