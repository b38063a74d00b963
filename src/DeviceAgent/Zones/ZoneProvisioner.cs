
namespace Orchestrator.DeviceAgent.Zones;

/// <summary>What <see cref="ZoneProvisioner.RecoverFromVirtual"/> did and what still needs an operator.</summary>
/// <param name="Rebuilt">Items rebuilt from the virtual zone.</param>
/// <param name="NeedsProvisioning">Secrets the virtual zone cannot supply (content key, credential) that are missing or damaged.</param>
public sealed record RecoveryReport(IReadOnlyList<string> Rebuilt, IReadOnlyList<string> NeedsProvisioning);

/// <summary>
/// Puts the hidden and free zones into a working state: first provisioning (factory or enrolment) and
/// <c>recover --from-virtual</c>, which rebuilds everything the read-only virtual zone can supply.
/// </summary>
public sealed class ZoneProvisioner(ZoneLayout layout, HiddenZone hidden)
{
    /// <summary>
    /// First-time setup: seals the device secrets and the trust root, backs up the virtual-zone updater into the
    /// hidden zone and copies it to the free zone. Existing hidden items are replaced.
    /// </summary>
    public void Provision(ReadOnlySpan<byte> deviceCredential, ReadOnlySpan<byte> contentKey, ReadOnlySpan<byte> trustRootPublicKey)
    {
        if (deviceCredential.Length == 0) throw new ArgumentException("device credential is empty; pass the secret the operator enrolled for this device", nameof(deviceCredential));
        if (contentKey.Length != 32) throw new ArgumentException($"content key has {contentKey.Length} bytes; it must be the 32-byte content.key from `orch keys init`", nameof(contentKey));
        CheckTrustRoot(trustRootPublicKey.ToArray(), "trust root");
        hidden.Write(HiddenItem.DeviceCredential, deviceCredential);
        hidden.Write(HiddenItem.ContentKey, contentKey);
        hidden.Write(HiddenItem.TrustRoot, trustRootPublicKey);
        RebuildUpdater();
        if (hidden.Read(HiddenItem.InstalledVersion).State != HiddenItemState.Ok)
            hidden.WriteInstalledVersion(InstalledVersion.None);
    }

    /// <summary>
    /// Seals the items of the updater's release track (<see cref="ZoneLayout.UpdaterReleaseZones"/>) into
    /// <paramref name="trackHidden"/>: its own credential, the updater product's content key, the trust root, and a
    /// version record at 0 (nothing installed yet) unless one exists.
    /// </summary>
    public static void ProvisionReleaseTrack(HiddenZone trackHidden, ReadOnlySpan<byte> credential, ReadOnlySpan<byte> contentKey, ReadOnlySpan<byte> trustRoot)
    {
        if (credential.Length == 0) throw new ArgumentException("updater credential is empty; pass the secret the operator enrolled for the updater identity", nameof(credential));
        if (contentKey.Length != 32) throw new ArgumentException($"updater content key has {contentKey.Length} bytes; it must be the 32-byte content.key of the updater product", nameof(contentKey));
        trackHidden.Write(HiddenItem.DeviceCredential, credential);
        trackHidden.Write(HiddenItem.ContentKey, contentKey);
        trackHidden.Write(HiddenItem.TrustRoot, trustRoot);
        if (trackHidden.ReadVersionRecord() is null) trackHidden.WriteInstalledVersion(InstalledVersion.None);
    }

    /// <summary>
    /// Rebuilds from the read-only virtual zone: the hidden updater backup and digest, the free updater copy,
    /// the trust root (if damaged and a plain copy exists), and a damaged installed-version record (reset to 0,
    /// so the server assigns a full upgrade that reuses every local chunk).
    /// </summary>
    public RecoveryReport RecoverFromVirtual()
    {
        var rebuilt = new List<string>();
        RebuildUpdater();
        rebuilt.Add("updater backup, updater digest, free-zone updater");
        if (hidden.Read(HiddenItem.TrustRoot).State != HiddenItemState.Ok)
        {
            if (!File.Exists(layout.VirtualTrustRoot))
                throw new HiddenZoneException($"the hidden trust root is damaged and the virtual zone has no '{layout.VirtualTrustRoot}' to rebuild it from; re-provision with `orch-agent provision`");
            var key = File.ReadAllBytes(layout.VirtualTrustRoot);
            try { CheckTrustRoot(key, $"'{layout.VirtualTrustRoot}'"); }
            catch (ArgumentException e) { throw new HiddenZoneException(e.Message); }
            hidden.Write(HiddenItem.TrustRoot, key);
            rebuilt.Add("trust root");
        }
        // The version record is the device's rollback floor: the virtual zone cannot know it, so a lost record stays
        // unknown (never 0) and the next session installs only at or above the director-signed floor.
        if (hidden.ReadVersionRecord() is null)
            rebuilt.Add("installed version record left unknown (not reset): the next session takes the floor from the director-signed directive");
        var missing = new[] { HiddenItem.ContentKey, HiddenItem.DeviceCredential }
            .Where(i => hidden.Read(i).State != HiddenItemState.Ok)
            .Select(i => HiddenZone.FileName(i))
            .ToList();
        return new RecoveryReport(rebuilt, missing);
    }

    /// <summary>A trust root is a root document envelope (<c>root.json</c> of <c>orch keys init</c>) or, legacy, a raw 32-byte release key.</summary>
    private static void CheckTrustRoot(byte[] bytes, string what)
    {
        try
        {
            Orchestrator.ChunkStore.Trust.TrustAnchor.Load(bytes, what);
        }
        catch (Exception e) when (e is Orchestrator.ChunkStore.Validation.InvalidInputException or Orchestrator.ChunkStore.Validation.IntegrityException)
        {
            throw new ArgumentException($"{what} is neither a root document signed by its root keys (root.json of `orch keys init`) nor a raw 32-byte release key: {e.Message}");
        }
    }

    private void RebuildUpdater()
    {
        if (!Directory.Exists(layout.VirtualUpdater))
            throw new HiddenZoneException($"the virtual zone has no updater folder '{layout.VirtualUpdater}'; the device image is incomplete");
        var bundle = UpdaterBundle.FromFolder(layout.VirtualUpdater);
        if (bundle.Entries.Count == 0)
            throw new HiddenZoneException($"the virtual-zone updater folder '{layout.VirtualUpdater}' is empty; the device image is incomplete");
        SelfRepair.Seal(layout, hidden, bundle, UpdaterSeal.ImageVersion, bundle.Digest);
        bundle.RestoreTo(layout.FreeUpdater);
    }
}
