using Orchestrator.DeviceAgent.Configuration;

namespace Orchestrator.DeviceAgent.Zones;

/// <summary>Every path the agent uses, in one place, derived from the three zone folders.</summary>
public sealed class ZoneLayout(ZonePaths zones)
{
    /// <summary>The zone folders.</summary>
    public ZonePaths Zones { get; } = zones;

    /// <summary>Virtual zone: plain, read-only copy of the updater (the last resort for self-repair).</summary>
    public string VirtualUpdater => Path.Combine(Zones.Virtual, "updater");

    /// <summary>Virtual zone: plain trust root public key (Ed25519, raw 32 bytes), used to rebuild the hidden one.</summary>
    public string VirtualTrustRoot => Path.Combine(Zones.Virtual, "trust-root.pub");

    /// <summary>Free zone: the installed client program; swapped as a whole directory on install.</summary>
    public string Client => Path.Combine(Zones.Free, "client");

    /// <summary>Free zone: the updater working copy the launcher checks on every start.</summary>
    public string FreeUpdater => Path.Combine(Zones.Free, "updater");

    /// <summary>Free zone: agent bookkeeping (staging, journal, chunk cache); on the same filesystem as <see cref="Client"/> so renames are atomic.</summary>
    public string Work => Path.Combine(Zones.Free, ".orch-agent");

    /// <summary>Where the next tree is assembled before the swap.</summary>
    public string Staging => Path.Combine(Work, "staging");

    /// <summary>Where the previous tree is parked during a swap.</summary>
    public string Retired => Path.Combine(Work, "retired");

    /// <summary>The install journal: present only while a swap is in progress.</summary>
    public string Journal => Path.Combine(Work, "install.journal");

    /// <summary>Verified chunks (named by id), so a restarted download resumes.</summary>
    public string ChunkCache => Path.Combine(Work, "chunks");

    /// <summary>Verified bytes of fetched manifests by SHA-256 (<see cref="Storage.KeptManifest"/>): the installed one is the next upgrade's patch reference.</summary>
    public string KeptManifests => Path.Combine(Work, "manifests");

    /// <summary>Ceiling of the device's request sequence numbers (<see cref="Session.RequestSequence"/>).</summary>
    public string RequestSequenceCeiling => Path.Combine(Work, "request-sequence");

    /// <summary>Sealed <see cref="Storage.StatIndex"/> of the installed client tree.</summary>
    public string ClientStatIndex => Path.Combine(Work, "client.stat-index");

    /// <summary>Sealed <see cref="Storage.StatIndex"/> of the free-zone updater and the hidden backup file (the launcher's check).</summary>
    public string UpdaterStatIndex => Path.Combine(Work, "updater.stat-index");

    /// <summary>Partially downloaded chunks (Range resume).</summary>
    public string PartialChunks => Path.Combine(Work, "partial");

    /// <summary>
    /// The zones of the updater's own release track (the updater product, installed under its own device identity):
    /// sealed items in a subfolder of the hidden zone, the installed release and its bookkeeping under <see cref="Work"/>.
    /// The release installed there is a candidate; it becomes <see cref="FreeUpdater"/> only after its self-test.
    /// </summary>
    public ZonePaths UpdaterReleaseZones => new(Zones.Virtual, Path.Combine(Zones.Hidden, "updater-release"), Path.Combine(Work, "updater-release"));

    /// <summary>Hidden-zone item path.</summary>
    public string Hidden(HiddenItem item) => Path.Combine(Zones.Hidden, HiddenZone.FileName(item));
}
